/* cmd_plot.c: `bpgen plot LOG.csv -o loss.png` -- the lecture's loss curve from
 * a `bpgen run --log` file: log10 of the training loss averaged over windows of
 * --window steps (default 1000, as the lecture's view(-1, 1000).mean(1); fewer
 * when the log is short, so the curve has at least 20 points), plus the dev
 * loss at its eval points.  Drawn by gnuplot, run as a subprocess and fed the
 * averaged data on its standard input; .png, .svg and .pdf outputs.
 *
 * No file name reaches gnuplot's script: gnuplot draws to its standard output
 * (a temporary file), and bpgen copies that to -o once gnuplot has succeeded,
 * so a name cannot run a command (`set output '|cmd'`, a newline ending the
 * string) and a failed plot leaves no empty output.  The title shows the log's
 * name with control characters replaced, in a quoted string, noenhanced.
 */
#include "bpgen.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char plot_usage[] =
  "usage: bpgen plot LOG.csv [-o loss.png] [--window N]\n"
  "\n"
  "Draws log10(loss) of a `bpgen run --log` file averaged over windows of N\n"
  "steps (default 1000, fewer for short logs), and the dev loss where it was\n"
  "evaluated.  The output type follows the extension: .png, .svg or .pdf.\n"
  "Needs gnuplot (Debian package gnuplot-nox).\n";

static bool on_path(const char *prog) {
  const char *path = getenv("PATH");
  if (!path)
    path = "/usr/bin:/bin";
  while (*path) {
    const char *colon = strchr(path, ':');
    size_t n = colon ? (size_t)(colon - path) : strlen(path);
    char *full = arena_printf("%.*s/%s", (int)n, n ? path : ".", prog);
    if (access(full, X_OK) == 0)
      return true;
    path += n + (colon != NULL);
  }
  return false;
}

/* A gnuplot single-quoted string ('' stands for one quote); control
 * characters, which would end the command, become '?'. */
static const char *gp_quote(const char *s) {
  char *out = arena_alloc(strlen(s) * 2 + 3), *q = out;
  *q++ = '\'';
  for (; *s; s++) {
    if (*s == '\'')
      *q++ = '\'';
    *q++ = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
  }
  *q++ = '\'';
  return out;
}

/* An unlinked temporary file, open for reading and writing. */
static int temp_fd(void) {
  const char *dir = getenv("TMPDIR");
  char *path = arena_printf("%s/bpgen-plot-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0)
    error_plain("plot: cannot make a temporary file in %s: %s", dir && *dir ? dir : "/tmp", strerror(errno));
  unlink(path);
  return fd;
}

/* The first line of what fd holds (gnuplot's complaint), trimmed. */
static const char *first_line(int fd) {
  char buf[512];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0)
    return "";
  buf[n] = '\0';
  char *p = buf;
  while (*p == '\n' || *p == ' ')
    p++;
  p[strcspn(p, "\n")] = '\0';
  return arena_strndup(p, strlen(p));
}

/* Copies what gnuplot drew (fd, from its start) to path; no file is left
 * behind when that fails. */
static void copy_out(int fd, const char *path) {
  off_t size = lseek(fd, 0, SEEK_END);
  if (size <= 0)
    error_plain("plot: gnuplot drew nothing for %s", path);
  lseek(fd, 0, SEEK_SET);
  FILE *f = fopen(path, "wb");
  if (!f)
    error_plain("plot: cannot write %s: %s", path, strerror(errno));
  char buf[1 << 16];
  ssize_t n;
  bool ok = true;
  while (ok && (n = read(fd, buf, sizeof buf)) > 0)
    ok = fwrite(buf, 1, (size_t)n, f) == (size_t)n;
  ok = ok && n == 0;
  if (fclose(f) != 0 || !ok) {
    int e = errno;
    remove(path);
    error_plain("plot: cannot write %s: %s", path, strerror(e));
  }
}

int cmd_plot(int argc, char **argv) {
  const char *log = NULL, *out = "loss.png";
  long window = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(plot_usage, stdout);
      return 0;
    }
    if (strcmp(a, "-o") == 0)
      out = cli_value(argc, argv, &i);
    else if (strcmp(a, "--window") == 0)
      window = cli_long("--window", cli_value(argc, argv, &i), 1, 1L << 30);
    else if (a[0] != '-' && !log)
      log = a;
    else
      cli_unknown("plot", a);
  }
  if (!log)
    error_usage("plot: no log file given (see bpgen plot --help)");
  const char *dot = strrchr(out, '.');
  const char *term = !dot ? NULL
                     : strcmp(dot, ".png") == 0 ? "pngcairo size 900,500"
                     : strcmp(dot, ".svg") == 0 ? "svg size 900,500"
                     : strcmp(dot, ".pdf") == 0 ? "pdfcairo"
                     : NULL;
  if (!term)
    error_usage("plot: -o %s: the output must end in .png, .svg or .pdf", out);

  /* read step,loss,dev_loss */
  SrcFile *f = read_src(log);
  size_t cap = f->len / 4 + 16, n = 0, ndev = 0;
  double *loss = xmalloc(cap * sizeof(double));
  long *step = xmalloc(cap * sizeof(long));
  double *dev = xmalloc(cap * sizeof(double));
  long *devstep = xmalloc(cap * sizeof(long));
  const char *p = f->text, *end = f->text + f->len;
  int line = 0;
  while (p < end) {
    line++;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end;
    char *text = arena_strndup(p, (size_t)(e - p));
    p = nl ? nl + 1 : end;
    size_t tl = strlen(text);
    if (tl && text[tl - 1] == '\r')
      text[--tl] = '\0';
    if (line == 1 && strncmp(text, "step,", 5) == 0)
      continue;
    if (tl == 0)
      continue;
    char *q;
    long s = strtol(text, &q, 10);
    double l = 0, d = NAN;
    bool ok = q != text && *q == ',';
    if (ok) {
      char *r = q + 1;
      l = strtod(r, &q);
      ok = q != r && (*q == ',' || *q == '\0');
      if (ok && *q == ',' && q[1]) {
        r = q + 1;
        d = strtod(r, &q);
        ok = q != r && *q == '\0';
      }
    }
    if (!ok) {
      free(loss), free(step), free(dev), free(devstep);
      error_plain("%s:%d: expected step,loss[,dev_loss], got '%s'", log, line, text);
    }
    const char *bad = !(l > 0 && isfinite(l)) ? "loss" : d == d && !(d > 0 && isfinite(d)) ? "dev loss" : NULL;
    if (bad) {
      free(loss), free(step), free(dev), free(devstep);
      error_plain("%s:%d: %s %s: the plot draws log10 of the loss, which needs a positive finite number", log,
                  line, bad, strcmp(bad, "loss") == 0 ? arena_printf("%g", l) : arena_printf("%g", d));
    }
    step[n] = s;
    loss[n++] = l;
    if (d == d) {
      devstep[ndev] = s + 1;
      dev[ndev++] = d;
    }
  }
  if (n == 0) {
    free(loss), free(step), free(dev), free(devstep);
    error_plain("%s: no loss rows to plot", log);
  }
  if (window == 0) {
    window = 1000;
    while (window > 1 && (long)n / window < 20)
      window /= 10;
  }
  if (!on_path("gnuplot")) {
    free(loss), free(step), free(dev), free(devstep);
    error_plain("plot: gnuplot not found: install it (Debian: apt-get install gnuplot-nox)");
  }
  /* gnuplot: script on stdin, the drawing on stdout, complaints on stderr */
  int ofd = temp_fd(), efd = temp_fd(), pfd[2];
  if (pipe(pfd) != 0) {
    free(loss), free(step), free(dev), free(devstep);
    error_plain("plot: cannot start gnuplot: %s", strerror(errno));
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    free(loss), free(step), free(dev), free(devstep);
    error_plain("plot: cannot start gnuplot: %s", strerror(errno));
  }
  if (pid == 0) {
    dup2(pfd[0], 0);
    dup2(ofd, 1);
    dup2(efd, 2);
    close(pfd[0]), close(pfd[1]), close(ofd), close(efd);
    execlp("gnuplot", "gnuplot", (char *)NULL);
    _exit(127);
  }
  close(pfd[0]);
  void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);   /* gnuplot may stop reading early */
  FILE *gp = fdopen(pfd[1], "w");
  if (!gp) {
    free(loss), free(step), free(dev), free(devstep);
    error_plain("plot: cannot start gnuplot: %s", strerror(errno));
  }
  fprintf(gp, "set terminal %s\nset output\n", term);
  fprintf(gp, "set title %s noenhanced\nset xlabel 'step'\nset ylabel 'log10 loss'\nset grid\nset key top right\n",
          gp_quote(log));
  fprintf(gp, "plot '-' using 1:2 with lines lw 2 title 'train, mean of log10 loss over %ld steps'%s\n",
          window, ndev ? ", '-' using 1:2 with linespoints pt 7 title 'dev loss (eval mode)'" : "");
  for (size_t i = 0; i < n; i += (size_t)window) {
    size_t k = i + (size_t)window <= n ? (size_t)window : n - i;
    double s = 0;
    for (size_t j = i; j < i + k; j++)
      s += log10(loss[j]);
    fprintf(gp, "%ld %.9g\n", step[i], s / (double)k);
  }
  fputs("e\n", gp);
  if (ndev) {
    for (size_t i = 0; i < ndev; i++)
      fprintf(gp, "%ld %.9g\n", devstep[i], log10(dev[i]));
    fputs("e\n", gp);
  }
  fputs("unset output\n", gp);
  free(loss), free(step), free(dev), free(devstep);
  fclose(gp);
  signal(SIGPIPE, old_pipe);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    const char *why = first_line(efd);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
      error_plain("plot: cannot run gnuplot");
    error_plain("plot: gnuplot failed drawing %s%s%s", out, *why ? ": " : "", why);
  }
  copy_out(ofd, out);
  close(ofd), close(efd);
  fprintf(stderr, "wrote %s\n", out);
  return 0;
}
