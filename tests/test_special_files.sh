#!/usr/bin/env bash
# Only regular files are opened, and no open can wait (model/base/file.h): a FIFO, a socket or a
# device in place of config.json, model.safetensors, a shard, the shard index, tokenizer.json,
# tokenizer_config.json or a training state makes the command exit 1 within a timeout, with one
# line naming the file and what it is.
. "$(dirname "$0")/lib.sh"

$PY scripts/gen_model.py "$work/one" --quiet --seed 3 || { echo "gen_model failed"; exit 1; }
$PY scripts/gen_model.py "$work/shards" --quiet --seed 3 --shards 2 || { echo "gen_model failed"; exit 1; }
shard=$(cd "$work/shards" && ls model-*.safetensors | head -1)

# replace DIR/FILE by KIND (fifo, socket, chardev)
plant() {
    local path=$1 kind=$2
    rm -f "$path"
    case $kind in
    fifo) mkfifo "$path" ;;
    socket) $PY -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$path" ;;
    chardev) ln -s /dev/zero "$path" ;;   # a device reached through a link (mknod needs privileges)
    esac
}
declare -A said=([fifo]="a FIFO" [socket]="a socket" [chardev]="a character device")

# expect: dsv3 CMD ARGS exits 1 within 10 s, one line naming FILE and what it is
expect() {
    local name=$1 file=$2 kind=$3; shift 3
    timeout 10 "$BIN" "$@" > /dev/null 2> "$work/err" < /dev/null
    local rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l < "$work/err")" -eq 1 ] && grep -q -- "$file: ${said[$kind]}, not a regular file" "$work/err"; then ok
    else bad "$name $kind (rc $rc)"; cat "$work/err"; fi
}

for kind in fifo socket chardev; do
    for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
        rm -rf "$work/m" && cp -r "$work/one" "$work/m"
        plant "$work/m/$f" $kind
        case $f in
        tokenizer*) expect "$f" "$f" $kind tokenize "$work/m" --text hi ;;
        *) expect "$f" "$f" $kind logits "$work/m" --ids 1,2,3 ;;
        esac
    done
    for f in model.safetensors.index.json "$shard"; do
        rm -rf "$work/m" && cp -r "$work/shards" "$work/m"
        plant "$work/m/$f" $kind
        expect "$f" "$f" $kind logits "$work/m" --ids 1,2,3
    done
    # a training state given to --resume
    plant "$work/state" $kind
    expect "train --resume" "state" $kind train "$work/one" --data examples/tokenizer_corpus.txt --steps 1 --seq-len 16 --resume "$work/state"
done
rm -f "$work/state"

# the Lua session too: load() names the file
rm -rf "$work/m" && cp -r "$work/one" "$work/m" && plant "$work/m/config.json" fifo
if timeout 10 "$BIN" -e "print(pcall(load, '$work/m'))" 2>&1 | grep -q "config.json: a FIFO, not a regular file"; then ok
else bad "load() of a FIFO config"; fi

finish
