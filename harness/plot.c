/* gnuplot: scripts are written beside their data so that a user can edit and re-render them; each renders a PNG
 * (pngcairo) and an SVG. */
#include "harness.h"

#include "trainer/core/fileio.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool plot_available(void) { return have_program("gnuplot"); }

int plot_render(const char *dir, const char *name) {
    if (!plot_available()) return -1;
    char *script = xasprintf("%s.gp", name);
    char *log = xasprintf("%s/%s.log", dir, name);
    char *argv[] = {"gnuplot", script, NULL};
    int rc = run_command(dir, argv, log);
    if (rc == 0) unlink(log);
    free(script), free(log);
    return rc == 0 ? 0 : -1;
}

int plot_run_schedules(const char *run_dir, const char *title) {
    char *steps = xasprintf("%s/steps.tsv", run_dir);
    char *text = slurp(steps);
    char *nl = text ? strchr(text, '\n') : NULL;
    bool have = nl && nl[1]; /* a header and at least one step (a 0-epoch run has none) */
    free(text), free(steps);
    if (!have || !plot_available()) return -1;
    Str gp = {0};
    str_addf(&gp, "# beta, tau and lr per step of run %s, from steps.tsv (written by the trainer).\n"
                  "# Edit and re-render with: gnuplot schedules.gp\n"
                  "set datafile separator tab\nset grid\nset xlabel 'step'\n",
             title);
    for (int pass = 0; pass < 2; pass++) {
        str_add(&gp, pass == 0 ? "set terminal pngcairo noenhanced size 900,900\nset output 'schedules.png'\n"
                               : "set terminal svg noenhanced size 900,900\nset output 'schedules.svg'\n");
        str_addf(&gp, "set multiplot layout 3,1 title \"%s\" noenhanced\n", title);
        str_add(&gp, "set ylabel 'beta'\nplot 'steps.tsv' using 1:6 with lines title 'beta'\n"
                     "set ylabel 'tau'\nplot 'steps.tsv' using 1:7 with lines title 'tau (EMA)'\n"
                     "set ylabel 'lr'\nplot 'steps.tsv' using 1:8 with lines title 'learning rate'\n"
                     "unset multiplot\n");
    }
    char *path = xasprintf("%s/schedules.gp", run_dir);
    int rc = atomic_write_text(path, str_c(&gp));
    free(path);
    str_free(&gp);
    return rc == 0 ? plot_render(run_dir, "schedules") : -1;
}
