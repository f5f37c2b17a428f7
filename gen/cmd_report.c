/* cmd_report.c: `bpgen report SPEC [--mine FILE.c] -o report.html` -- the
 * learner's kit on one page.
 *
 * Consumes the spec (and a learner's backward file); produces one
 * self-contained HTML page: the forward and backward graph as inline SVG
 * (Graphviz's dot renders the text `bpgen dot --backward` writes), each forward
 * line beside the backward lines derived from it (the text `bpgen explain`
 * prints), the cmp table of `bpgen check` and, with --mine, the table and hints
 * of `bpgen ninja`.  Rows are coloured exact / approximate / wrong; a click on
 * a graph node shows its lines.  No network: no external script, font or
 * style, the script is a few inline lines.
 *
 * The one idea: the page is assembled from the other commands' own output
 * (explain_print, check_graphs, ninja_run write text to a FILE), read back line
 * by line, so the page says exactly what the commands say.
 */
#include "bpgen.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
  "usage: bpgen report SPEC [--mine FILE.c] [--dtype f32|f64] [--seed N] [-D NAME=INT]... [--expand]\n"
  "                    -o report.html\n"
  "\n"
  "Writes one self-contained HTML page (no network) about SPEC:\n"
  "  - the forward and backward graph (SVG; needs Graphviz's dot, Debian package\n"
  "    graphviz -- without it the page says so and goes on); click a node to see\n"
  "    its spec line and the backward lines derived from it\n"
  "  - each forward line beside its backward lines and their math (bpgen explain)\n"
  "  - the cmp table of bpgen check (generated code against the reference runtime)\n"
  "  - with --mine FILE.c: bpgen ninja's verdicts on your backward pass, and its hints\n"
  "Rows are green when exact, amber when approximate (right within the tolerance),\n"
  "red when wrong.\n";

/* ---- text helpers -------------------------------------------------------------- */

static void esc(Buf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n && s[i]; i++) {
    switch (s[i]) {
    case '<': buf_printf(b, "&lt;"); break;
    case '>': buf_printf(b, "&gt;"); break;
    case '&': buf_printf(b, "&amp;"); break;
    case '"': buf_printf(b, "&quot;"); break;
    default: buf_printf(b, "%c", s[i]);
    }
  }
}

static void esc_str(Buf *b, const char *s) { esc(b, s, strlen(s)); }

/* What a command writes to a FILE, as a string. */
typedef struct Capture {
  char *buf;
  size_t len;
  FILE *f;
} Capture;

static FILE *capture_start(Capture *c) {
  c->buf = NULL;
  c->len = 0;
  c->f = open_memstream(&c->buf, &c->len);
  if (!c->f)
    error_plain("open_memstream: %s", strerror(errno));
  return c->f;
}

static char *capture_end(Capture *c) {
  fclose(c->f);
  char *s = arena_strndup(c->buf ? c->buf : "", c->len);
  free(c->buf);
  return s;
}

/* The cells of a table line "a | b | c", trimmed; returns how many (at most max). */
static int cells(const char *line, size_t len, const char **cell, int max) {
  int n = 0;
  const char *p = line, *end = line + len;
  while (p <= end && n < max) {
    const char *bar = memchr(p, '|', (size_t)(end - p));
    const char *e = bar ? bar : end;
    const char *a = p, *z = e;
    while (a < z && *a == ' ')
      a++;
    while (z > a && z[-1] == ' ')
      z--;
    cell[n++] = arena_strndup(a, (size_t)(z - a));
    if (!bar)
      break;
    p = bar + 1;
  }
  return n;
}

/* Verdicts by gradient name ("dW1" -> "exact"), from the tables. */
typedef struct Verdicts {
  StrMap check, mine;
} Verdicts;

/* A table as the commands print it: the header line starts with head; rows
 * follow up to a blank line or a line without '|'.  kind 0: bpgen check (wrong:
 * "<-" after the row), kind 1: bpgen ninja (wrong: shape ok or approximate False). */
static const char *table_html(Buf *b, const char *text, const char *head, int kind, StrMap *verdict) {
  const char *h = strstr(text, head);
  if (!h || (h != text && h[-1] != '\n'))
    return text;
  const char *cell[16];
  const char *e = strchr(h, '\n');
  int nh = cells(h, e ? (size_t)(e - h) : strlen(h), cell, 16);
  buf_printf(b, "<table class=\"%s\">\n<thead><tr>", kind ? "mine" : "cmp");
  for (int i = 0; i < nh; i++) {
    buf_printf(b, "<th>");
    esc_str(b, cell[i]);
    buf_printf(b, "</th>");
  }
  buf_printf(b, "<th>verdict</th></tr></thead>\n<tbody>\n");
  const char *p = e ? e + 1 : h + strlen(h);
  while (*p && *p != '\n') {
    const char *le = strchr(p, '\n');
    size_t len = le ? (size_t)(le - p) : strlen(p);
    if (!memchr(p, '|', len))
      break;
    int n = cells(p, len, cell, 16);
    const char *mark = "";
    const char *last = cell[n - 1];
    const char *arrow = strstr(last, "<-");
    if (arrow) {
      mark = arrow;
      cell[n - 1] = arena_strndup(last, (size_t)(arrow - last));
      while (*cell[n - 1] && cell[n - 1][strlen(cell[n - 1]) - 1] == ' ')
        cell[n - 1] = arena_strndup(cell[n - 1], strlen(cell[n - 1]) - 1);
    }
    const char *v;
    if (kind == 0)
      v = arrow ? "wrong" : n > 2 && strcmp(cell[2], "True") == 0 ? "exact" : "approx";
    else
      v = (n > 1 && strcmp(cell[1], "False") == 0) || (n > 3 && strcmp(cell[3], "False") == 0) ? "wrong"
          : n > 2 && strcmp(cell[2], "True") == 0                                               ? "exact"
                                                                                                 : "approx";
    if (verdict)
      strmap_put(verdict, cell[0], (void *)v);
    buf_printf(b, "<tr class=\"%s\" data-name=\"", v);
    esc_str(b, cell[0]);
    buf_printf(b, "\">");
    for (int i = 0; i < nh; i++) {
      buf_printf(b, "<td>");
      if (i < n)
        esc_str(b, cell[i]);
      buf_printf(b, "</td>");
    }
    buf_printf(b, "<td>%s", strcmp(v, "wrong") == 0 ? "wrong" : strcmp(v, "exact") == 0 ? "exact" : "approximate");
    if (*mark) {
      buf_printf(b, " ");
      esc_str(b, mark);
    }
    buf_printf(b, "</td></tr>\n");
    p += len + (le != NULL);
  }
  buf_printf(b, "</tbody></table>\n");
  return p;
}

static void pre(Buf *b, const char *cls, const char *text, size_t n) {
  while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
    n--;
  while (n && *text == '\n')
    text++, n--;
  if (!n)
    return;
  buf_printf(b, "<pre class=\"%s\">", cls);
  esc(b, text, n);
  buf_printf(b, "</pre>\n");
}

/* ---- the graph ----------------------------------------------------------------- */

/* dot -Tsvg on the text, or NULL (and *why) when Graphviz is missing or fails. */
static const char *render_svg(const char *dot_text, const char **why) {
  const char *dot = getenv("BPGEN_DOT");
  if (!dot || !*dot)
    dot = "dot";
  char dir[] = "/tmp/bpgen_report_XXXXXX";
  if (!mkdtemp(dir))
    error_plain("cannot make a temporary directory: %s", strerror(errno));
  const char *in = arena_printf("%s/g.dot", dir), *out = arena_printf("%s/g.svg", dir);
  write_text(in, dot_text);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    error_plain("fork: %s", strerror(errno));
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0)
      dup2(devnull, 2);
    execlp(dot, "dot", "-Tsvg", "-o", out, in, (char *)NULL);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      error_plain("waitpid: %s", strerror(errno));
  const char *svg = NULL;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    FILE *f = fopen(out, "r");
    if (f) {
      Buf t = {0};
      char chunk[8192];
      size_t n;
      while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_printf(&t, "%.*s", (int)n, chunk);
      fclose(f);
      svg = buf_done(&t);
    }
  }
  unlink(in);
  unlink(out);
  rmdir(dir);
  if (!svg) {
    *why = WIFEXITED(st) && WEXITSTATUS(st) == 127
             ? "the graph needs Graphviz's dot command, which is not installed (Debian package graphviz)"
             : "Graphviz's dot failed to render the graph";
    return NULL;
  }
  const char *s = strstr(svg, "<svg");   /* drop the XML prolog and DOCTYPE */
  if (!s) {
    *why = "Graphviz's dot wrote no SVG";
    return NULL;
  }
  return s;
}

/* ---- the lines: explain's text, one table row per forward line ------------------ */

static void lines_html(Buf *b, const char *text, const Verdicts *vd) {
  buf_printf(b, "<table class=\"explain\">\n<thead><tr><th>line</th><th>forward</th><th>backward (derived)"
                "</th></tr></thead>\n<tbody>\n");
  const char *p = text;
  bool open = false;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n && p[0] >= '0' && p[0] <= '9') {   /* "24  logits  = h @ W2 + b2     [32, 27]" */
      if (open)
        buf_printf(b, "</td></tr>\n");
      int line = atoi(p);
      const char *q = p;
      while (*q >= '0' && *q <= '9')
        q++;
      while (*q == ' ')
        q++;
      buf_printf(b, "<tr id=\"line-%d\" data-line=\"%d\"><td class=\"ln\">%d</td><td class=\"fw\"><code>",
                 line, line, line);
      esc(b, q, n - (size_t)(q - p));
      buf_printf(b, "</code></td><td class=\"bw\">");
      open = true;
    } else if (open && n) {
      const char *q = p;
      while (*q == ' ')
        q++;
      size_t k = 0;
      while (q + k < p + n && q[k] != ' ')
        k++;
      const char *lhs = arena_strndup(q, k);
      const char *rest = q + k;
      while (*rest == ' ' && rest < p + n)
        rest++;
      bool assign = lhs[0] == 'd' && (strncmp(rest, "+=", 2) == 0 || strncmp(rest, "= ", 2) == 0);
      if (assign) {
        const char *v = strmap_get(&vd->mine, lhs, strlen(lhs));
        if (!v)
          v = strmap_get(&vd->check, lhs, strlen(lhs));
        buf_printf(b, "<div class=\"bl %s\" data-lhs=\"", v ? v : "none");
        esc_str(b, lhs);
        buf_printf(b, "\"><code>");
      } else {
        buf_printf(b, "<div class=\"note\"><code>");
      }
      esc(b, q, n - (size_t)(q - p));
      buf_printf(b, "</code></div>");
    }
    p += n + (e != NULL);
  }
  if (open)
    buf_printf(b, "</td></tr>\n");
  buf_printf(b, "</tbody></table>\n");
}

static void json_str(Buf *b, const char *s) {
  buf_printf(b, "\"");
  for (; s && *s; s++) {
    if (*s == '"' || *s == '\\')
      buf_printf(b, "\\%c", *s);
    else if (*s == '<')
      buf_printf(b, "\\u003c");   /* never "</script>" inside the script */
    else if ((unsigned char)*s < 0x20)
      buf_printf(b, "\\u%04x", *s);
    else
      buf_printf(b, "%c", *s);
  }
  buf_printf(b, "\"");
}

static const char style[] =
  "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1500px}\n"
  "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\n"
  "code,pre{font-family:monospace;font-size:12.5px}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}\n"
  "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;"
  "text-align:left;vertical-align:top}th{background:#eee}\n"
  "tr.exact td,div.exact{background:#d9f2d9}tr.approx td,div.approx{background:#fff2cc}"
  "tr.wrong td,div.wrong{background:#f8d0d0}\n"
  "td.ln{color:#777;text-align:right}td.fw code{white-space:pre}div.bl code,div.note code{white-space:pre}\n"
  "div.note{color:#666}tr.sel td{outline:2px solid #1a73e8}\n"
  ".graphwrap{display:flex;gap:1em;align-items:flex-start}#svg{flex:1;overflow:auto;max-height:80vh;"
  "border:1px solid #ddd}#svg svg{max-width:100%;height:auto}\n"
  "#panel{width:34em;position:sticky;top:1em;border:1px solid #ccc;padding:.6em;background:#fafafa;"
  "min-height:6em;overflow:auto;max-height:80vh}#panel code{white-space:pre-wrap}#panel table{width:100%}\n"
  "g.node{cursor:pointer}g.node.sel polygon,g.node.sel ellipse{stroke:#1a73e8;stroke-width:3}\n"
  ".legend span{padding:1px 8px;margin-right:.6em}.legend .exact{background:#d9f2d9}"
  ".legend .approx{background:#fff2cc}.legend .wrong{background:#f8d0d0}\n";

/* On a click on a graph node: its spec line's row (the forward line and its
 * backward lines) and the lines that write its gradient, in the side panel.
 * "#node=nK" in the address clicks node nK on load (for a headless check). */
static const char script[] =
  "(function(){\n"
  "var panel=document.getElementById('panel');\n"
  "function show(id){\n"
  "  var n=NODES[id]; if(!n) return;\n"
  "  document.querySelectorAll('.sel').forEach(function(e){e.classList.remove('sel');});\n"
  "  var h='<b>'+esc(n.label)+'</b>';\n"
  "  var row=document.getElementById('line-'+n.line);\n"
  "  if(row){row.classList.add('sel');h+='<p>spec line '+n.line+':</p><table class=\"explain\">'+row.outerHTML+'</table>';}\n"
  "  else h+='<p>spec line '+n.line+' (a declaration: no backward lines of its own)</p>';\n"
  "  if(n.grad){var w=document.querySelectorAll('div.bl[data-lhs=\"'+n.grad+'\"]');\n"
  "    if(w.length){h+='<p>lines that write '+esc(n.grad)+':</p>';"
  "w.forEach(function(d){h+=d.outerHTML;});}}\n"
  "  panel.innerHTML=h; panel.setAttribute('data-shown',id);\n"
  "  var g=document.getElementById('svgnode-'+id); if(g) g.classList.add('sel');\n"
  "}\n"
  "function esc(s){return s.replace(/&/g,'&amp;').replace(/</g,'&lt;');}\n"
  "document.querySelectorAll('#svg g.node').forEach(function(g){\n"
  "  var t=g.querySelector('title'); if(!t) return; var id=t.textContent;\n"
  "  g.id='svgnode-'+id; g.addEventListener('click',function(){show(id);});\n"
  "});\n"
  "var m=/#node=(n[0-9]+)/.exec(location.hash); if(m) show(m[1]);\n"
  "document.body.setAttribute('data-ready','1');\n"
  "})();\n";

/* bpgen ninja's report on the learner's file; its error (a compile error, a
 * crash) in *err instead of exiting, so the page still shows the rest. */
static Capture mine_cap;
static jmp_buf mine_jb;
static const char *run_mine(Graph *g, const NinjaOpts *o, const char *path, const char *text, const char **err) {
  *err = NULL;
  FILE *out = capture_start(&mine_cap);
  if (setjmp(mine_jb)) {
    error_catch(NULL);
    *err = error_text();
    return capture_end(&mine_cap);
  }
  error_catch(&mine_jb);
  ninja_run(g, o, path, text, out);
  error_catch(NULL);
  return capture_end(&mine_cap);
}

char *report_html(Cli *c, const char *mine) {
  if (!c->spec)
    error_usage("no spec file given (see bpgen report --help)");
  SrcFile *f = read_src(c->spec);
  Graph *gf = parse_spec(f, c->ovr, c->novr);
  Graph *gg = c->expand ? expand_fused(gf) : gf;
  grad_build(gg);

  Capture cap;
  explain_print(gg, capture_start(&cap));
  const char *explain = capture_end(&cap);
  const char *dot_text = dot_graph(gg, true);
  const char *why = NULL;
  const char *svg = render_svg(dot_text, &why);
  check_graphs(gf, gg, c->dtype, c->seed, 0, capture_start(&cap));
  const char *check = capture_end(&cap);

  const char *ninja = NULL, *ninja_err = NULL;
  if (mine) {
    SrcFile *mf = read_src(mine);
    Graph *gn = parse_spec(f, c->ovr, c->novr);   /* ninja builds its own backward */
    if (c->expand)
      gn = expand_fused(gn);
    NinjaOpts o = {c->dtype, c->seed, false, 0};
    ninja = run_mine(gn, &o, mine, mf->text, &ninja_err);
  }

  Verdicts vd = {{0}, {0}};
  Buf b = {0};
  const char *title = f->name;
  buf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>bpgen report: ");
  esc_str(&b, title);
  buf_printf(&b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>bpgen report: ", style);
  esc_str(&b, title);
  buf_printf(&b, "</h1>\n<p class=\"meta\">");
  for (int i = 0; i < gf->ndims; i++)
    buf_printf(&b, "%s%s = %ld", i ? ", " : "dims: ", gf->dims[i].name, gf->dims[i].value);
  buf_printf(&b, "; %s; seed %llu%s%s", c->dtype == DT_F64 ? "float64" : "float32", (unsigned long long)c->seed,
             c->expand ? "; fused ops expanded" : "", mine ? "; your file: " : "");
  if (mine)
    esc_str(&b, mine);
  buf_printf(&b, "</p>\n<p class=\"legend\"><span class=\"exact\">exact (bitwise equal)</span>"
                 "<span class=\"approx\">approximate (right within the tolerance)</span>"
                 "<span class=\"wrong\">wrong</span></p>\n<nav><a href=\"#graph\">graph</a> · "
                 "<a href=\"#lines\">lines</a> · <a href=\"#check\">check</a>%s</nav>\n",
             mine ? " · <a href=\"#mine\">your backward pass</a>" : "");

  /* the tables first (their verdicts colour the lines), then the page in order */
  Buf tc = {0}, tm = {0};
  const char *rest = table_html(&tc, check, "name ", 0, &vd.check);
  const char *check_head = check, *check_head_end = strstr(check, "\nname ");
  pre(&tc, "tail", rest, strlen(rest));
  char *check_table = buf_done(&tc);
  char *mine_html = NULL;
  if (mine) {
    const char *t = strstr(ninja, "tensor ");
    while (t && t != ninja && t[-1] != '\n')
      t = strstr(t + 1, "tensor ");
    if (t) {
      pre(&tm, "head", ninja, (size_t)(t - ninja));
      const char *after = table_html(&tm, t, "tensor ", 1, &vd.mine);
      pre(&tm, "hints", after, strlen(after));
    } else {
      pre(&tm, "head", ninja, strlen(ninja));
    }
    if (ninja_err)
      pre(&tm, "error", ninja_err, strlen(ninja_err));
    mine_html = buf_done(&tm);
  }

  buf_printf(&b, "<section id=\"graph\">\n<h2>Forward and backward graph</h2>\n"
                 "<p>Forward nodes grey (inputs blue, params yellow), backward nodes red; dashed edges: "
                 "forward values the backward pass reads. Click a node to see its lines.</p>\n"
                 "<div class=\"graphwrap\"><div id=\"svg\">\n");
  if (svg)
    buf_printf(&b, "%s", svg);
  else {
    buf_printf(&b, "<p class=\"missing\">");
    esc_str(&b, why);
    buf_printf(&b, "</p>\n");
  }
  buf_printf(&b, "</div>\n<aside id=\"panel\">Click a node of the graph: its spec line and the backward "
                 "lines derived from it appear here.</aside></div>\n</section>\n");

  buf_printf(&b, "<section id=\"lines\">\n<h2>Each forward line and the backward lines derived from it</h2>\n"
                 "<p>As <code>bpgen explain</code> prints them: dX is d(loss)/dX, · a matrix product, ⊙ an "
                 "elementwise one, ᵀ a transpose, Σ_b a sum over the batch axis.%s</p>\n",
             mine ? " Backward lines are coloured by your verdict where you filled the gradient, else "
                    "by bpgen check's." : " Backward lines are coloured by bpgen check's verdict.");
  lines_html(&b, explain, &vd);
  buf_printf(&b, "</section>\n");

  buf_printf(&b, "<section id=\"check\">\n<h2>bpgen check: generated code against the reference runtime</h2>\n");
  pre(&b, "head", check_head, check_head_end ? (size_t)(check_head_end - check_head) : 0);
  buf_printf(&b, "%s</section>\n", check_table);

  if (mine) {
    buf_printf(&b, "<section id=\"mine\">\n<h2>Your backward pass: ");
    esc_str(&b, mine);
    buf_printf(&b, "</h2>\n%s</section>\n", mine_html);
  }

  /* the nodes for the script: id -> label, spec line, gradient name */
  buf_printf(&b, "<script>\nvar NODES={");
  for (int i = 0; i < gg->nnodes; i++) {
    Node *n = gg->nodes[i];
    const char *name = n->name ? n->name
                       : n->is_backward && n->fwd && n->fwd->name ? arena_printf("d%s (part)", n->fwd->name)
                       : n->is_backward && n == gg->loss->grad ? arena_printf("d%s = 1 (seed)", gg->loss->name ? gg->loss->name : "loss")
                                                                : optab[n->op].name;
    const char *label = n->is_backward ? arena_printf("%s: backward %s %s", name, optab[n->op].name,
                                                      shape_str(&n->shape))
                                       : arena_printf("%s: %s %s", name, optab[n->op].name, shape_str(&n->shape));
    buf_printf(&b, "%s\n\"n%d\":{\"line\":%d,\"label\":", i ? "," : "", n->id, n->line);
    json_str(&b, label);
    buf_printf(&b, ",\"grad\":");
    json_str(&b, !n->is_backward && n->name ? arena_printf("d%s", n->name) : "");
    buf_printf(&b, "}");
  }
  buf_printf(&b, "};\n%s</script>\n</body>\n</html>\n", script);
  return buf_done(&b);
}

int cmd_report(int argc, char **argv) {
  Cli c;
  cli_init(&c, DT_F32);
  const char *mine = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--mine") == 0)
      mine = cli_value(argc, argv, &i);
    else if (!cli_common(&c, argc, argv, &i))
      cli_unknown("report", argv[i]);
  }
  if (!c.out)
    error_usage("report: give -o report.html (see bpgen report --help)");
  char *page = report_html(&c, mine);
  if (strcmp(c.out, "-") == 0)
    fputs(page, stdout);
  else
    write_text(c.out, page);
  return 0;
}
