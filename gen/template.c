/* template.c: the files embedded at build time (templates/ and the runtime
 * headers, see scripts/embed.sh) and filling their {{holes}}.
 *
 * Templates are plain C with {{name}} holes and no logic of their own: loops
 * over nodes live in the emitter, which passes the finished text for a hole.
 */
#include "bpgen.h"

#include <stdlib.h>
#include <string.h>

#include "templates.h"

const char *embedded_text(const char *name) {
  for (const EmbeddedFile *f = embedded_files; f->name; f++)
    if (strcmp(f->name, name) == 0)
      return f->text;
  die("no embedded file %s", name);
}

char *template_fill(const char *text, const char *const *keys, const char *const *vals, int n) {
  size_t cap = strlen(text) + 1, len = 0;
  for (int i = 0; i < n; i++)
    cap += strlen(vals[i]) * 4;   /* generous; grown below if a hole repeats often */
  char *out = xmalloc(cap);
  const char *p = text;
  while (*p) {
    const char *open = strstr(p, "{{");
    const char *close = open ? strstr(open + 2, "}}") : NULL;
    size_t lit = open && close ? (size_t)(open - p) : strlen(p);
    const char *val = "";
    size_t vlen = 0;
    if (open && close) {
      size_t klen = (size_t)(close - open - 2);
      int k = 0;
      while (k < n && !(strlen(keys[k]) == klen && memcmp(keys[k], open + 2, klen) == 0))
        k++;
      if (k == n)
        die("template hole {{%.*s}} has no value", (int)klen, open + 2);
      val = vals[k];
      vlen = strlen(val);
    }
    if (len + lit + vlen + 1 > cap) {
      cap = (len + lit + vlen + 1) * 2;
      char *nb = xmalloc(cap);
      memcpy(nb, out, len);
      free(out);
      out = nb;
    }
    memcpy(out + len, p, lit);
    len += lit;
    memcpy(out + len, val, vlen);
    len += vlen;
    p += lit;
    if (open && close)
      p = close + 2;
  }
  out[len] = '\0';
  char *res = arena_strndup(out, len);
  free(out);
  return res;
}
