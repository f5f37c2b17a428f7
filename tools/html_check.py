#!/usr/bin/env python3
"""html_check.py: checks a page `bpgen report` wrote, without a browser.

usage: tools/html_check.py PAGE.html SPEC [NAME...]

Parses the page with Python's html.parser and fails (exit 1, one line per
problem) when: an element is closed that is not open or left open at the end;
the page loads anything from outside (a src or href to another place, a <link>,
@import, url(...)); it lacks the sections (the SVG graph, the lines table, the
cmp table); or a tensor name of SPEC (every input, param and named statement),
or a NAME given, is missing from the page's text.
"""
import re
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Check(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.text, self.tags = [], [], [], {}
        self.classes = set()

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        for cls in (a.get("class") or "").split():
            self.classes.add((tag, cls))
        for k in ("src", "href"):
            v = a.get(k)
            if v is not None and not v.startswith("#"):
                self.problems.append("line %d: <%s %s=%r> loads from outside the page" % (self.getpos()[0], tag, k, v))
        if tag == "link":
            self.problems.append("line %d: <link> loads from outside the page" % self.getpos()[0])
        if tag not in VOID:
            self.stack.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            open_ = self.stack[-1] if self.stack else None
            self.problems.append("line %d: </%s> closes %s" % (self.getpos()[0], tag,
                                 "<%s> of line %d" % open_ if open_ else "nothing"))
            for i in range(len(self.stack) - 1, -1, -1):
                if self.stack[i][0] == tag:
                    del self.stack[i:]
                    break
            return
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "style" and re.search(r"@import|url\(", data):
            self.problems.append("line %d: the style loads from outside the page" % self.getpos()[0])
        self.text.append(data)


def spec_names(path):
    names = []
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0]
        m = re.match(r"\s*(?:input|param)\s+([A-Za-z_]\w*)", line) or re.match(r"\s*([A-Za-z_]\w*)\s*=", line)
        if m and not line.lstrip().startswith("dim "):
            names.append(m.group(1))
    return names


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    page, spec = sys.argv[1], sys.argv[2]
    c = Check()
    c.feed(open(page, encoding="utf-8").read())
    c.close()
    for tag, line in c.stack:
        c.problems.append("<%s> of line %d is never closed" % (tag, line))
    if not c.tags.get("svg"):
        c.problems.append("no <svg> graph")
    for tag, cls in (("table", "explain"), ("table", "cmp")):
        if (tag, cls) not in c.classes:
            c.problems.append("no <%s class=%s>" % (tag, cls))
    text = "".join(c.text)
    names = spec_names(spec) + sys.argv[3:]
    for name in names:
        if not re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(name), text):
            c.problems.append("tensor %s is not on the page" % name)
    for p in c.problems:
        print("%s: %s" % (page, p))
    if not c.problems:
        print("%s: ok: parses, nothing from outside, %d tensor names present" % (page, len(names)))
    return 1 if c.problems else 0


if __name__ == "__main__":
    sys.exit(main())
