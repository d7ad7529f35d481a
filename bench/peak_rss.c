/* peak_rss — run a command, then report its wall time, CPU time and peak
 * resident set size (ru_maxrss from wait4), like a tiny GNU time -v.
 *
 *   peak_rss [-o FILE] -- COMMAND [ARG...]
 *
 * The command's standard streams are left alone; the report is one line
 *   wall_s=1.234 user_s=1.100 sys_s=0.120 maxrss_kib=6912 status=0
 * written to FILE (appended) or to standard error. Exits with the command's
 * status (128 + signal when it was killed). */
#define _DEFAULT_SOURCE /* wait4 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double tv_s(struct timeval tv) {
  return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  const char *report = NULL;
  int i = 1;
  for (; i < argc; i++) {
    if (!strcmp(argv[i], "--")) {
      i++;
      break;
    }
    if (!strcmp(argv[i], "-o") && i + 1 < argc) {
      report = argv[++i];
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: peak_rss [-o FILE] -- COMMAND [ARG...]\n");
      return 64;
    } else {
      break;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "usage: peak_rss [-o FILE] -- COMMAND [ARG...]\n");
    return 64;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) {
    perror("peak_rss: fork");
    return 71;
  }
  if (pid == 0) {
    execvp(argv[i], argv + i);
    fprintf(stderr, "peak_rss: %s: %s\n", argv[i], strerror(errno));
    _exit(127);
  }
  int st = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  while (wait4(pid, &st, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("peak_rss: wait4");
      return 71;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double wall = (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  int code = WIFEXITED(st) ? WEXITSTATUS(st)
             : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
  FILE *f = report ? fopen(report, "a") : stderr;
  if (!f) {
    fprintf(stderr, "peak_rss: %s: %s\n", report, strerror(errno));
    f = stderr;
  }
  fprintf(f, "wall_s=%.3f user_s=%.3f sys_s=%.3f maxrss_kib=%ld status=%d\n",
          wall, tv_s(ru.ru_utime), tv_s(ru.ru_stime), ru.ru_maxrss, code);
  if (f != stderr)
    fclose(f);
  return code;
}
