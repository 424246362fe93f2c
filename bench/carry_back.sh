#!/usr/bin/env bash
# Bring what a device call's `bash bench/host.sh collect` wrote ($OUT, the run tool's files_at folder) back into
# the ignored .carry/, so the next session's `caches` step resumes the study with warm caches:
#   bash bench/carry_back.sh /work/.device/30
# study.db, gpu.txt and trials/ go to .carry/<card>/ (a study measured on one card never resumes on another, and
# trial folder numbers belong to their study); the timing caches, whose names say the card, to .carry/.
# CARRY_DIR: the carry folder (default: .carry beside bench/).
set -euo pipefail
die() { echo "error: $*" >&2; exit 2; }
[ $# -eq 1 ] || die "usage: bash bench/carry_back.sh FILES_AT_FOLDER"
src=$1
[ -d "$src" ] || die "$src is not a folder"
[ -f "$src/gpu.txt" ] || die "$src has no gpu.txt: not the output of host.sh collect"
gpu=$(tr -d '[:space:]' < "$src/gpu.txt")
[[ "$gpu" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "$src/gpu.txt names no card slug (read: '$gpu')"
carry=${CARRY_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.carry}
dest="$carry/$gpu"
mkdir -p "$dest"
if [ -f "$src/study.db" ]; then
  cp "$src/study.db" "$dest/study.db" && chmod u+w "$dest/study.db"
fi
echo "$gpu" > "$dest/gpu.txt"
[ -f "$src/caches.tgz" ] && tar xzf "$src/caches.tgz" -C "$carry"
if [ -f "$src/logs.tgz" ]; then     # the trials' result.json / eval.txt (the precision table reads them)
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  tar xzf "$src/logs.tgz" -C "$tmp" 2>/dev/null || die "$src/logs.tgz is not a readable tar.gz"
  if [ -d "$tmp/trials" ]; then mkdir -p "$dest/trials" && cp -r "$tmp/trials/." "$dest/trials/"; fi
fi
echo "carried back to $dest: $(ls "$dest" | tr '\n' ' '); caches: $(cd "$carry" && ls timing-*.cache 2>/dev/null | wc -l)"
