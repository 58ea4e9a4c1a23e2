/* Helpers for the command-line tests (tests/test_cli_*.c): run the real `stfpm` binary in a
 * child process with its stdout / stderr captured, temporary folders, demo data, file
 * snapshots to prove that files were left intact. */
#ifndef STFPM_CLI_UTIL_H
#define STFPM_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Path of the stfpm binary: $STFPM_BINARY_DIR/stfpm (CTest sets the variable), else ./stfpm. */
const char *cli_binary(void);
/* The real ImageNet teacher (../shared/weights/resnet18_imagenet_l3_bnfolded.safetensors) or
 * NULL when absent. */
const char *cli_teacher(void);
/* Write a randomly initialised (Kaiming, seed 99) ResNet-18 up to layer3 as a teacher file, from
 * a child process (so the caller never holds an OpenCL context). 1 on success. */
int cli_write_random_teacher(const char *path);
/* The same for another backbone (stfpm_backbone_parse name) and depth (3: to layer3, 4: to layer4). */
int cli_write_random_teacher_for(const char *path, const char *backbone, int depth);
/* The teacher for a CLI test: the real one when present, else a random one written to
 * DIR/random_teacher.safetensors (saying so on stdout). The path goes to out; 1 on success. */
int cli_teacher_or_random(const char *dir, char *out, size_t n);

typedef struct cli_opts {
    const char *const *env;   /* NULL-terminated: "NAME=value" sets, "NAME" unsets (child only) */
    long long fsize_limit;    /* > 0: RLIMIT_FSIZE in bytes for the child, SIGXFSZ ignored, so a
                                 write past the limit fails with EFBIG ("disk full") */
    int gated;                /* 1: the child waits for cli_release() before exec (its pid is
                                 known before it runs) */
    int timeout_s;            /* kill the child after this (0: 600 s) */
} cli_opts;

typedef struct cli_proc {
    pid_t pid;
    int gate;                 /* write end of the gate pipe, -1 when none */
    char out_path[512], err_path[512];
    double t0;
    int timeout_s;
} cli_proc;

typedef struct cli_result {
    int code;                 /* exit status; 128 + signal when killed by a signal */
    int signal;               /* the signal, 0 when the program exited */
    char *out, *err;          /* captured stdout / stderr (NUL-terminated, malloc'd) */
    double seconds;
} cli_result;

/* Start `stfpm args...` (args NULL-terminated, without the program name). */
cli_proc cli_start(const cli_opts *o, const char *const *args);
void cli_release(cli_proc *p);
/* Wait (with the timeout), collect the output, remove the capture files. */
cli_result cli_finish(cli_proc *p);
/* cli_start + cli_finish. */
cli_result cli_runv(const cli_opts *o, const char *const *args);
/* Variadic convenience: cli_run(opts, "train", "--data", dir, ..., NULL). */
cli_result cli_run(const cli_opts *o, ...);
void cli_result_free(cli_result *r);

/* Assert (Check) that the command failed with want_code (-1: any non-zero code, but not a
 * signal) and that stderr contains every needle (NULL-terminated list). Prints the message. */
void cli_expect_fail(const char *what, const cli_result *r, int want_code, const char *const *needles);
/* Assert success (exit 0, no signal), showing stderr otherwise. */
void cli_expect_ok(const char *what, const cli_result *r);

/* Temporary folder /tmp/stfpm_cli_<tag>_XXXXXX (created); path is static per call slot. */
char *cli_mkdtemp(const char *tag);
void cli_rm_rf(const char *path);
int cli_copy_tree(const char *src, const char *dst);
/* Demo data set (MVTec layout) of size x size images. */
void cli_make_demo(const char *dir, int n_train, int n_good, int n_bad, int size, uint64_t seed);

char *cli_read_file(const char *path, size_t *len);   /* NULL when unreadable */
int cli_write_file(const char *path, const void *data, size_t len);
int cli_exists(const char *path);
/* Truncate a copy: write the first keep bytes of src to dst. */
int cli_truncate_copy(const char *src, const char *dst, size_t keep);

/* Digest of every regular file directly in dir: "name size fnv1a64\n" lines, sorted by name
 * (malloc'd). Two equal digests mean the same files with the same bytes. */
char *cli_dir_digest(const char *dir);
/* Number of entries in dir whose name contains ".tmp." (temporary files left behind). */
int cli_count_tmp(const char *dir);
/* Number of data rows of a train_log.csv (0 when missing); *last_val receives the val_loss
 * of the last row when not NULL. */
int cli_log_rows(const char *log_path, double *last_val);

#endif
