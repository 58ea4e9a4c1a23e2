/* Small file-system helpers: atomic text writes, mkdir -p, clocks. */
#ifndef STFPM_FSUTIL_H
#define STFPM_FSUTIL_H
#include "stfpm/stfpm.h"
stfpm_status stfpm_mkdir_p(const char *path);
/* Write text to path via path.tmp.<pid>, fsync, rename. path is untouched on failure. */
stfpm_status stfpm_write_text_atomic(const char *path, const char *text, size_t len);
/* Read a whole text file (malloc'd, NUL-terminated). */
stfpm_status stfpm_read_text(const char *path, char **text, size_t *len);
int stfpm_path_exists(const char *path);
double stfpm_now(void);
typedef struct stfpm_textbuf { char *text; size_t len, cap; } stfpm_textbuf;
void textbuf_add(stfpm_textbuf *b, const char *t);
stfpm_status stfpm_write_text_atomic_path_scales(const char *dir, const char *text, size_t len);
/* JSON string escaping into out (always NUL-terminated). */
void stfpm_json_escape(const char *in, char *out, size_t out_len);
#endif
