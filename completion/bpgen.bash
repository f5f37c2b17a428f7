# bash completion for bpgen: the commands, each command's options (those its
# `--help` lists; tests/driver.sh checks that none is missing), the values of
# --dtype, --optimizer and --lr-schedule, directories after --in/--out, files
# after the options that take one, and spec files (*.spec) for the SPEC
# argument (a LOG.csv for plot).  Installed by `make install` as
# PREFIX/share/bash-completion/completions/bpgen; needs only bash (not the
# bash-completion package's helpers).

_bpgen() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=
  [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}
  local commands="grad check explain run predict sample plot ninja dot"
  local shared="-D --dtype --seed --expand --help"

  # the command: the first word after bpgen, when it is one; else `bpgen SPEC -o`
  local cmd=gen
  case " $commands " in *" ${COMP_WORDS[1]:-} "*) [ "$COMP_CWORD" -gt 1 ] && cmd=${COMP_WORDS[1]} ;; esac

  local opts
  case $cmd in
    gen)     opts="-o --trainer --sync-bn --shared --prefix $shared" ;;
    grad)    opts="--in --out --random-inputs --ref $shared" ;;
    check)   opts="--tol --json $shared" ;;
    explain) opts="$shared" ;;
    run)     opts="--data --text --data-tokens --val-tokens --data-x --data-y --dev-x --dev-y
                   --test-x --test-y --steps --lr --lr-schedule --decay-at --lr-min --warmup
                   --optimizer --beta1 --beta2 --eps --weight-decay --clip --bn-stats --bn-momentum --sync-bn --comm-stats --split-seed
                   --eval-every --eval-batches --print-every --log --save --save-every --load --resume
                   --samples --sample-len --temperature --top-k --quiet --json --threads
                   --mine --tol --rng --torch-global --torch-global-seed $shared" ;;
    predict) opts="--load --data-x --data-y -o --argmax --json --threads --quiet $shared" ;;
    sample)  opts="--load -n --temperature --top-k --threads --quiet $shared" ;;
    plot)    opts="-o --window --help" ;;
    ninja)   opts="--mine --header --ref --tol $shared" ;;
    dot)     opts="--backward -o $shared" ;;
  esac

  # the value of the option before the cursor
  case $prev in
    --dtype)        COMPREPLY=($(compgen -W "f32 f64" -- "$cur")); return ;;
    --optimizer)    COMPREPLY=($(compgen -W "sgd adamw" -- "$cur")); return ;;
    --lr-schedule)  COMPREPLY=($(compgen -W "step cosine constant" -- "$cur")); return ;;
    --bn-stats)     COMPREPLY=($(compgen -W "calibrate running" -- "$cur")); return ;;
    --rng)          COMPREPLY=($(compgen -W "torch torch-scalar bpgen" -- "$cur")); return ;;
    --in|--out)     compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
    -o|--mine|--data|--text|--data-tokens|--val-tokens|--data-x|--data-y|--dev-x|--dev-y|--test-x|--test-y|--log|--save|--load)
                    compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
    -D|--prefix|--seed|--tol|--steps|--lr|--decay-at|--lr-min|--warmup|--beta1|--beta2|--eps|--weight-decay|--clip|--bn-momentum|--split-seed|--eval-every|--eval-batches|--print-every|--save-every|--samples|--sample-len|--temperature|--top-k|--threads|--window|--torch-global|--torch-global-seed|-n)
                    COMPREPLY=(); return ;;
  esac

  if [[ $cur == -* ]]; then
    [ "$COMP_CWORD" -eq 1 ] && opts="--help --version"
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  # a positional argument: the spec (directories to walk into), plot's log
  local pat='!*.spec'
  [ "$cmd" = plot ] && pat='!*.csv'
  compopt -o filenames 2>/dev/null
  mapfile -t COMPREPLY < <(compgen -f -X "$pat" -- "$cur"; compgen -d -- "$cur"
                           [ "$COMP_CWORD" -eq 1 ] && compgen -W "$commands" -- "$cur")
}
complete -F _bpgen bpgen
