#!/usr/bin/env bash
# The firmware example on emulated Cortex-M boards (qemu-system-arm, semihosting).
#
#     bash examples/firmware/run.sh                 # build, run the scenario on every board
#     bash examples/firmware/run.sh --broken        # the broken variant: passes only if its checks FAIL
#     bash examples/firmware/run.sh --size          # flash/RAM the core adds, against size-baseline.txt
#     bash examples/firmware/run.sh --size --update # measure and rewrite size-baseline.txt
#     bash examples/firmware/run.sh --setup         # only install what is missing
#
# Boards: thumbv7m-none-eabi on `lm3s6965evb` (Cortex-M3) and thumbv6m-none-eabi on `microbit`
# (Cortex-M0, no compare-and-swap: portable-atomic + critical-section). FIRMWARE_TARGETS picks
# some of them (space-separated).
#
# The scenario prints each on-device check (`ok N - ...` / `not ok N - ...`) and its own
# `firmware: N passed, M failed` (shown here as `BOARD: firmware: ...`); this script ends with
# `firmware: N passed, M failed` for all boards together and exits 0 only if every check passed
# on every board. `--broken` prints no such line: its failures are expected. A board whose run hangs is stopped
# after FIRMWARE_RUN_TIMEOUT seconds (default 120) and counts as a failed check.
# FIRMWARE_VARIANT=broken runs the broken variant with the normal expectation (so it exits 1).
#
# Setup adds the rustup targets and installs, when missing, Debian's qemu-system-arm (to run) and
# binutils-arm-none-eabi (for --size) with apt-get, as root or through sudo. Where they cannot be
# had it prints `SKIPPED: <reason>` and exits with $FIRMWARE_SKIP_EXIT (default 77), never 0.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGETS="${FIRMWARE_TARGETS:-thumbv7m-none-eabi thumbv6m-none-eabi}"
RUN_TIMEOUT="${FIRMWARE_RUN_TIMEOUT:-120}"
SKIP_EXIT="${FIRMWARE_SKIP_EXIT:-77}"
VARIANT="${FIRMWARE_VARIANT:-normal}"
BASELINE="$HERE/size-baseline.txt"
# A figure may grow by this many percent over the baseline (and always by SIZE_SLACK bytes, so
# that a 0- or 4-byte RAM figure does not fail on one more word).
SIZE_TOLERANCE_PERCENT=10
SIZE_SLACK=8
export PATH="$HOME/.cargo/bin:$PATH"
# The firmware crate's own target dir (set in its .cargo/config.toml), under the workspace's.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/firmware}"

skipped() {
    echo "SKIPPED: $*"
    exit "$SKIP_EXIT"
}

# The qemu command line for a target's board (the runners in .cargo/config.toml match it).
# -icount: a virtual clock of one instruction per 16 ns that skips idle time, so timings on
# the device do not depend on how busy the host is.
qemu_command() {
    local cpu machine
    case "$1" in
        thumbv6m-none-eabi) cpu=cortex-m0 machine=microbit ;;
        thumbv7m-none-eabi) cpu=cortex-m3 machine=lm3s6965evb ;;
        *) echo "no board for target $1" >&2; return 1 ;;
    esac
    echo qemu-system-arm -cpu "$cpu" -machine "$machine" -nographic \
        -semihosting-config enable=on,target=native -icount shift=4,align=off,sleep=off
}

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        return 126
    fi
}

# setup TOOLS...: the rustup targets, and the named tools (qemu, size), installed when missing.
setup() {
    local target installed want packages=()
    installed="$(rustup target list --installed 2>/dev/null || true)"
    for target in $TARGETS; do
        if ! grep -qx "$target" <<<"$installed"; then
            echo "rustup target add $target"
            timeout 300 rustup target add "$target"
        fi
    done
    for want in "$@"; do
        case "$want" in
            qemu) command -v qemu-system-arm >/dev/null 2>&1 || packages+=(qemu-system-arm) ;;
            size) command -v arm-none-eabi-size >/dev/null 2>&1 || packages+=(binutils-arm-none-eabi) ;;
        esac
    done
    if [[ ${#packages[@]} -gt 0 ]]; then
        command -v apt-get >/dev/null 2>&1 ||
            skipped "${packages[*]} not installed, and there is no apt-get to install it"
        as_root true ||
            skipped "${packages[*]} not installed, and installing it needs root or password-less sudo"
        local apt_log
        apt_log="$(mktemp "${TMPDIR:-/tmp}/firmware-apt.XXXXXX")"
        echo "installing Debian's ${packages[*]} (apt-get; log in $apt_log)"
        if ! as_root timeout 600 apt-get update >"$apt_log" 2>&1; then
            tail -n 15 "$apt_log"
            skipped "apt-get update failed, so ${packages[*]} cannot be installed"
        fi
        if ! as_root env DEBIAN_FRONTEND=noninteractive timeout 900 \
            apt-get install -y --no-install-recommends "${packages[@]}" >>"$apt_log" 2>&1; then
            tail -n 15 "$apt_log"
            skipped "apt-get install ${packages[*]} failed"
        fi
    fi
    for want in "$@"; do
        case "$want" in
            qemu)
                local machines machine
                machines="$(qemu-system-arm -machine help 2>&1)" ||
                    skipped "qemu-system-arm does not start: $machines"
                for target in $TARGETS; do
                    machine="$(qemu_command "$target" | sed 's/.*-machine \([^ ]*\).*/\1/')"
                    grep -q "^$machine " <<<"$machines" ||
                        skipped "this qemu-system-arm has no '$machine' machine"
                done
                qemu-system-arm --version | head -n 1
                ;;
            size)
                arm-none-eabi-size --version | head -n 1
                ;;
        esac
    done
}

# build TARGET [CARGO ARGS...]: a release build of the firmware crate for TARGET.
build() {
    local target="$1"
    shift
    (cd "$HERE" && cargo build --quiet --release --target "$target" "$@")
}

PASSED=0
FAILED=0

# run_board TARGET VARIANT: runs the scenario on TARGET's board, adds its checks to the totals.
run_board() {
    local target="$1" variant="$2" features=() log rc=0
    [[ "$variant" == broken ]] && features=(--features broken)
    build "$target" --bin cancelable-firmware "${features[@]}"
    local elf="$TARGET_DIR/$target/release/cancelable-firmware" machine
    machine="$(qemu_command "$target" | sed 's/.*-machine \([^ ]*\).*/\1/')"
    echo "--- $target on $machine ($variant)"
    log="$(mktemp "${TMPDIR:-/tmp}/firmware-run.XXXXXX")"
    # The board's own summary line is shown as `BOARD: firmware: ...`, so that the only line of
    # the form `NAME: N passed, M failed` is the total at the end (CI counts such lines).
    # qemu's lm3s6965evb model reports a timer it leaves disabled at reset: not ours, not news.
    # shellcheck disable=SC2046
    timeout --kill-after=10 "$RUN_TIMEOUT" $(qemu_command "$target") -kernel "$elf" \
        2> >(grep -v '^Timer with period zero, disabling$' >&2) |
        tee "$log" | sed -u "s/^firmware: /$machine: firmware: /" || rc=$?
    local ok not_ok summary
    ok="$(grep -c '^ok [0-9]' "$log" || true)"
    not_ok="$(grep -c '^not ok [0-9]' "$log" || true)"
    summary="$(grep -E '^firmware: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)"
    rm -f "$log"
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + not_ok))
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "not ok - $target: qemu ran over ${RUN_TIMEOUT} s and was stopped (the firmware hung)"
        FAILED=$((FAILED + 1))
    elif [[ "$summary" != "firmware: $ok passed, $not_ok failed" ]]; then
        echo "not ok - $target: the firmware ended without a matching summary line (qemu exit $rc)"
        FAILED=$((FAILED + 1))
    elif [[ $rc -ne 0 && $not_ok -eq 0 ]]; then
        echo "not ok - $target: qemu exited $rc although every check passed"
        FAILED=$((FAILED + 1))
    elif [[ $rc -eq 0 && $not_ok -ne 0 ]]; then
        echo "not ok - $target: qemu exited 0 although $not_ok checks failed"
        FAILED=$((FAILED + 1))
    fi
}

scenario() {
    local target start=$SECONDS
    for target in $TARGETS; do
        run_board "$target" "$VARIANT"
    done
    echo "(took $((SECONDS - start)) s)"
    echo "firmware: $PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 && $PASSED -gt 0 ]]
}

# The broken variant must fail its checks, and still end (no hang) with its summary line.
broken() {
    local target="${TARGETS%% *}"
    run_board "$target" broken
    # No `firmware: N passed, M failed` line here: these failures are the expected outcome.
    if [[ $FAILED -gt 0 && $PASSED -gt 0 ]]; then
        echo "broken variant: $FAILED checks failed and $PASSED passed, as they must when the cancel never reaches the sensors"
    else
        echo "broken variant: expected failing checks, got none: the checks cannot tell a broken firmware" >&2
        return 1
    fi
}

# figures TARGET BIN: prints "FLASH RAM" of an image (.text+.rodata, .data+.bss).
figures() {
    arm-none-eabi-size -A "$TARGET_DIR/$1/release/$2" | awk '
        $1 == ".text" || $1 == ".rodata" { flash += $2 }
        $1 == ".data" || $1 == ".bss" { ram += $2 }
        END { print flash + 0, ram + 0 }'
}

size_check() {
    local update="$1" target measured="" failed=0
    printf '%-20s %-11s %13s %11s %15s %13s\n' target case "flash (abs)" "ram (abs)" "core: flash" "core: ram"
    for target in $TARGETS; do
        build "$target" --bin size_baseline --bin size_tokens --bin size_operations
        local base_flash base_ram case
        read -r base_flash base_ram < <(figures "$target" size_baseline)
        printf '%-20s %-11s %13s %11s %15s %13s\n' "$target" baseline "$base_flash" "$base_ram" - -
        for case in tokens operations; do
            local flash ram
            read -r flash ram < <(figures "$target" "size_$case")
            local add_flash=$((flash - base_flash)) add_ram=$((ram - base_ram))
            printf '%-20s %-11s %13s %11s %15s %13s\n' "$target" "$case" "$flash" "$ram" "+$add_flash" "+$add_ram"
            measured+="$target $case $add_flash $add_ram"$'\n'
        done
    done
    if [[ "$update" == true ]]; then
        {
            echo "# Bytes of flash (.text + .rodata) and RAM (.data + .bss, the heap not counted) that"
            echo "# \`cancelable\` adds to the minimal firmware src/bin/size_baseline.rs (src/bin/size_tokens.rs,"
            echo "# src/bin/size_operations.rs; release profile of this crate), read with arm-none-eabi-size."
            echo "# \`run.sh --size\` fails when a figure grows by more than ${SIZE_TOLERANCE_PERCENT}% (and ${SIZE_SLACK} bytes) over"
            echo "# it; \`run.sh --size --update\` rewrites this file. Measured with $(rustc --version)."
            echo "# target case flash ram"
            printf '%s' "$measured"
        } >"$BASELINE"
        echo "wrote $BASELINE"
        return 0
    fi
    [[ -f "$BASELINE" ]] || { echo "$BASELINE is missing: run $0 --size --update" >&2; return 1; }
    local t c f r
    while read -r t c f r; do
        [[ -z "$t" ]] && continue
        local kind value base limit
        for kind in flash ram; do
            if [[ $kind == flash ]]; then value=$f; else value=$r; fi
            base="$(awk -v t="$t" -v c="$c" -v k="$kind" '
                $1 == t && $2 == c { print (k == "flash" ? $3 : $4); found = 1 }
                END { if (!found) print "" }' "$BASELINE")"
            if [[ -z "$base" ]]; then
                echo "not ok - $t $c $kind: no baseline figure (run $0 --size --update)"
                failed=1
                continue
            fi
            limit=$((base + base * SIZE_TOLERANCE_PERCENT / 100))
            [[ $limit -lt $((base + SIZE_SLACK)) ]] && limit=$((base + SIZE_SLACK))
            if [[ $value -gt $limit ]]; then
                echo "not ok - $t $c $kind: +$value bytes, over the limit of $limit (baseline $base + ${SIZE_TOLERANCE_PERCENT}%)"
                failed=1
            else
                echo "ok - $t $c $kind: +$value bytes (baseline $base, limit $limit)"
            fi
        done
    done <<<"$measured"
    return "$failed"
}

case "${1:-}" in
    "") setup qemu; scenario ;;
    --broken) setup qemu; broken ;;
    --size)
        setup size
        case "${2:-}" in
            "") size_check false ;;
            --update) size_check true ;;
            *) echo "usage: $0 --size [--update]" >&2; exit 2 ;;
        esac
        ;;
    --setup) setup qemu size ;;
    *) echo "usage: $0 [--broken | --size [--update] | --setup]" >&2; exit 2 ;;
esac
