#!/usr/bin/env python3
"""npytool.py: .npy and .npz files for tests/driver.sh, without numpy.

  npytool.py unzip CK.npz DIR          every entry of an .npz as DIR/<name>.npy
  npytool.py rows IN.npy FIRST N OUT   rows FIRST..FIRST+N-1 (C order) into OUT
  npytool.py close A.npy B.npy ROW TOL  B's rows equal A's from row ROW on, each
                                        element within TOL (relative to max(1,|a|))
  npytool.py ce LOGITS.npy Y.npy       "loss L accuracy A": the mean cross-entropy
                                        of (N, K) logits against (N,) classes, and
                                        the share of rows whose argmax is the class
  npytool.py argmax LOGITS.npy C.npy   exit 0 when C holds the argmax of each row
  npytool.py blobs N F K X.npy Y.npy   N points of F features ('<f8') around K
                                        centres, and their classes ('<i8')
Only version 1.0 C-order little-endian files, as bpgen writes them."""
import ast, math, struct, sys, zipfile

FMT = {'<f8': 'd', '<f4': 'f', '<i8': 'q', '<i4': 'i', '|u1': 'B', '<u8': 'Q'}


def parse(buf):
    assert buf[:6] == b'\x93NUMPY', 'not a .npy file'
    hlen = struct.unpack('<H', buf[8:10])[0]
    h = ast.literal_eval(buf[10:10 + hlen].decode())
    assert not h['fortran_order']
    shape = tuple(h['shape'])
    n = 1
    for d in shape:
        n *= d
    vals = struct.unpack('<%d%s' % (n, FMT[h['descr']]), buf[10 + hlen:])
    return h['descr'], shape, list(vals)


def read(path):
    with open(path, 'rb') as f:
        return parse(f.read())


def write(path, descr, shape, vals):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ', '.join(map(str, shape)) + (',' if len(shape) == 1 else ''))
    l = len(d) + 1
    h = (10 + l + 63) // 64 * 64 - 10
    with open(path, 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', h) + (d + ' ' * (h - l) + '\n').encode())
        f.write(struct.pack('<%d%s' % (len(vals), FMT[descr]), *vals))


def main(a):
    if a[0] == 'unzip':
        z = zipfile.ZipFile(a[1])
        for n in z.namelist():
            with open('%s/%s' % (a[2], n), 'wb') as f:
                f.write(z.read(n))
    elif a[0] == 'rows':
        descr, shape, v = read(a[1])
        per = len(v) // shape[0]
        first, n = int(a[2]), int(a[3])
        write(a[4], descr, (n,) + shape[1:], v[first * per:(first + n) * per])
    elif a[0] == 'close':
        _, sa, va = read(a[1])
        _, sb, vb = read(a[2])
        per = len(va) // sa[0]
        off, tol = int(a[3]) * per, float(a[4])
        assert sa[1:] == sb[1:], (sa, sb)
        worst = max(abs(x - va[off + i]) / max(1.0, abs(va[off + i])) for i, x in enumerate(vb))
        print('max rel diff %.3g over %d elements' % (worst, len(vb)))
        return 0 if worst <= tol and len(vb) > 0 else 1
    elif a[0] == 'ce':
        _, sl, l = read(a[1])
        _, sy, y = read(a[2])
        n, k = sl
        loss = hits = 0
        for r in range(n):
            row = l[r * k:(r + 1) * k]
            m = max(row)
            lse = m + math.log(sum(math.exp(x - m) for x in row))
            loss += lse - row[y[r]]
            hits += row.index(m) == y[r]
        print('loss %.6f accuracy %.6f' % (loss / n, hits / n))
    elif a[0] == 'argmax':
        _, sl, l = read(a[1])
        _, sc, c = read(a[2])
        n, k = sl
        ok = sc == (n,) and all(l[r * k:(r + 1) * k].index(max(l[r * k:(r + 1) * k])) == c[r] for r in range(n))
        print('argmax %s' % ('agrees' if ok else 'differs'))
        return 0 if ok else 1
    elif a[0] == 'blobs':
        import random
        random.seed(1)
        n, nf, k = int(a[1]), int(a[2]), int(a[3])
        xs, ys = [], []
        for _ in range(n):
            c = random.randrange(k)
            xs += [random.gauss(c * (1 if j % 2 else -1), 0.5) for j in range(nf)]
            ys.append(c)
        write(a[4], '<f8', (n, nf), xs)
        write(a[5], '<i8', (n,), ys)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
