#!/usr/bin/env bash
# scripts/parity/hf/observe_cases.sh OUT: run the reference script on the cases FACTS.md describes
# (data from make_rc_data.py), one output_dir per case under OUT, with the time of each run in
# OUT/times.txt and the console of each in OUT/<case>.log. Re-creates OUT (data included), except
# with RC_CASES="name ..." set: then only those cases are (re)run, in the existing OUT. Takes 3 to 6
# minutes on 2 busy CPU cores.
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
[[ -n ${BERTFIT_PYTHON:-} ]] || source "$HERE/../../env.sh"
OUT=${1:?usage: observe_cases.sh OUT}
ONLY=${RC_CASES:-}
[[ -n $ONLY ]] || rm -rf -- "$OUT"
mkdir -p -- "$OUT"
OUT=$(cd -- "$OUT" && pwd -P)
rm -rf -- "$OUT/data"
"$BERTFIT_PYTHON" "$HERE/make_rc_data.py" "$OUT/data"
D=$OUT/data
M=$BERTFIT_ASSETS/all-MiniLM-L6-v2
BASE=(--model_name_or_path "$M" --max_seq_length 32 --num_train_epochs 1 --per_device_train_batch_size 32)

run() {  # NAME ARGS...
    local name=$1 t0 t1 rc=0; shift
    [[ -z $ONLY || " $ONLY " == *" $name "* ]] || return 0
    rm -rf -- "${OUT:?}/$name"
    t0=$EPOCHREALTIME
    "$HERE/run_reference.sh" "$@" --output_dir "$OUT/$name" >"$OUT/$name.log" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    printf '%-16s rc=%d %6.1f s\n' "$name" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" | tee -a "$OUT/times.txt"
}

T=(--train_file "$D/trec/train.csv" --validation_file "$D/trec/validation.csv")
run readme "${BASE[@]}" "${T[@]}" --do_train --do_eval --learning_rate 2e-5
run recipe "${BASE[@]}" "${T[@]}" --do_train --do_eval --learning_rate 2e-5 --lr_scheduler_type cosine \
    --warmup_steps 0.1 --weight_decay 0.01 --gradient_accumulation_steps 2 --max_grad_norm 1.0 --optim adamw_torch \
    --logging_steps 1
run eval_steps "${BASE[@]}" "${T[@]}" --do_train --do_eval --per_device_train_batch_size 16 \
    --eval_strategy steps --eval_steps 5
run logging1 "${BASE[@]}" "${T[@]}" --do_train --do_eval --logging_steps 1
run predict "${BASE[@]}" "${T[@]}" --test_file "$D/trec/test.csv" --do_train --do_eval --do_predict
run regression "${BASE[@]}" --train_file "$D/regression/train.csv" --validation_file "$D/regression/validation.csv" \
    --test_file "$D/regression/test.csv" --do_train --do_eval --do_predict
RC_REFERENCE_LIST_DTYPE=1 run multilabel "${BASE[@]}" --train_file "$D/multilabel/train.json" --validation_file "$D/multilabel/validation.json" \
    --test_file "$D/multilabel/test.json" --do_train --do_eval --do_predict
run multilabel_plain "${BASE[@]}" --train_file "$D/multilabel/train.json" --validation_file "$D/multilabel/validation.json" \
    --do_train --do_eval   # fails with datasets 5.2.0 (no shim): recorded in FACTS.md
run jsonl "${BASE[@]}" --train_file "$D/jsonl/train.json" --validation_file "$D/jsonl/validation.json" \
    --do_train --do_eval
run two_columns "${BASE[@]}" --train_file "$D/two_columns/train.csv" --validation_file "$D/two_columns/validation.csv" \
    --test_file "$D/two_columns/test.csv" --text_column_names title,body --text_column_delimiter " | " \
    --do_train --do_eval --do_predict
run missing_label "${BASE[@]}" --train_file "$D/missing_label/train.csv" --validation_file "$D/missing_label/validation.csv" \
    --test_file "$D/missing_label/test.csv" --do_train --do_eval --do_predict
run unseen_subset "${BASE[@]}" --train_file "$D/unseen_subset/train.csv" --validation_file "$D/unseen_subset/validation.csv" \
    --max_train_samples 128 --do_train --do_eval
run epochs15 "${BASE[@]}" "${T[@]}" --do_train --num_train_epochs 1.5 --logging_steps 1 --save_strategy epoch
run save_steps "${BASE[@]}" "${T[@]}" --do_train --save_steps 3 --save_total_limit 2
[[ -n $ONLY && " $ONLY " != *" resume "* ]] || { rm -rf -- "$OUT/resume.src"; cp -r "$OUT/save_steps" "$OUT/resume.src"; }
# resume: a copy of save_steps' checkpoint-6 (steps 1..6 done) resumed into a fresh output_dir
run resume "${BASE[@]}" "${T[@]}" --do_train --save_steps 3 --save_total_limit 2 \
    --resume_from_checkpoint "$OUT/resume.src/checkpoint-6"
