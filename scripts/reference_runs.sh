#!/usr/bin/env bash
# The reference rows of README.md, re-measured one run at a time on an otherwise idle machine (issue 18):
#   DLBENCH_DATA_DIR=../shared/datasets bash scripts/reference_runs.sh > reference_runs.log 2>&1 &
# Each `dlbench run` holds the machine-wide measurement lock, so nothing else dlbench starts can share the
# cores; each row records what other processes used anyway (cpu_other_share, contended).
# The long rows (gan_mnist, unet_nuclei, autoencoder conv, flows_density realnvp_mnist: 15-70 minutes
# each) are not part of it.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${DLBENCH_DATA_DIR:?set DLBENCH_DATA_DIR to the full datasets, e.g. ../shared/datasets}"
export DLBENCH_DATA_DIR DLBENCH_PROGRESS=lines
dlbench=.venv/bin/dlbench
step() { echo "=== $(date -u +%FT%TZ) $*"; "$dlbench" "$@" --strict-data; echo "=== exit $?"; }
step run mlp_mnist --devices cpu --repeats 3
step run dqn_mouse --devices cpu --repeats 3
step run cnn_cifar --devices cpu --variants fc_sgd,fc_adam,lenet
step run sentiment_imdb --devices cpu --variants transformer,bow_bigrams --repeats 3
step run sentiment_imdb --devices cpu --variants gru,simple_rnn,lstm,bigru
step run autoencoder_mnist --devices cpu --variants dense --repeats 3
step run flows_density --devices cpu --variants realnvp_1d,realnvp,realnvp_best --repeats 3
echo "=== $(date -u +%FT%TZ) done"
