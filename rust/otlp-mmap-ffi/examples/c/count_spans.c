/* Links the static library from plain C, opens an OTLP-MMAP file and prints
 * how many completed spans it holds (and, with --incomplete, the spans that
 * never ended too). Proves the generated header and library work from C. */
#include <stdio.h>
#include <string.h>
#include "otlp_mmap.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE [--incomplete]\n", argv[0]);
    return 2;
  }
  int incomplete = argc > 2 && strcmp(argv[2], "--incomplete") == 0;
  OmError err;
  OmReaderOptions opts;
  om_reader_options_default(&opts);
  OmReader *reader = NULL;
  if (om_reader_open(argv[1], &opts, &reader, &err) != OM_OK) {
    fprintf(stderr, "open: %s\n", err.message);
    return 1;
  }
  unsigned long long spans = 0;
  int abandoned = 0;
  for (;;) {
    OmBatch batch;
    int rc = om_reader_poll(reader, OM_SIGNAL_TRACES, 0, &batch, &err);
    if (rc == OM_OK) {
      spans += batch.items;
      if (om_reader_commit(reader, OM_SIGNAL_TRACES, batch.token, &err) != OM_OK) {
        fprintf(stderr, "commit: %s\n", err.message);
        return 1;
      }
    } else if (rc == OM_EMPTY) {
      if (incomplete && !abandoned) {
        om_reader_abandon_spans(reader, 0, &err);
        abandoned = 1;
        continue;
      }
      break;
    } else {
      fprintf(stderr, "poll: %s\n", err.message);
      return 1;
    }
  }
  printf("%llu\n", spans);
  return om_reader_close(reader) == OM_OK ? 0 : 1;
}
