#!/usr/bin/env python3
"""Prints the comparison table from the JSON lines of fresco-diffusers-bench and
diffusers_bench.py (one results file, read from the path given or standard input).

Ratios are fresco / diffusers: below 1 means fresco-diffusers is faster (or smaller).
"""

import json
import sys


def load(lines):
    results = {}
    order = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r.get("event") != "result":
            continue
        if r["model"] not in results:
            order.append(r["model"])
        results.setdefault(r["model"], {})[r["impl"]] = r
    return order, results


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def fmt(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"


def kernel_rows(lines):
    """The fresco-kernels-bench lines (one per kernel and shape)."""
    rows = []
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if "kernel" in r:
                rows.append(r)
    return rows


def print_kernels(rows):
    print()
    print("| kernel, shape | fresco ms | candle ms | ratio | max abs difference |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['kernel']} | {r['fresco_ms_median']:.2f} | {r['candle_ms_median']:.2f} "
            f"| {r['ratio']:.2f} | {r['max_abs_difference']:.1e} |"
        )


def main():
    source = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
    with source:
        lines = source.readlines()
    order, results = load(lines)
    header = (
        "| model | size, steps | threads | UNet ms/step fresco | diffusers | ratio "
        "| pipeline s/image fresco | diffusers | ratio | peak RSS MiB fresco | diffusers |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for model in order:
        fr = results[model].get("fresco-diffusers", {})
        di = results[model].get("diffusers", {})
        any_r = fr or di
        size = f"{any_r.get('width')}x{any_r.get('height')}, {any_r.get('steps')}"
        threads = "/".join(str(r.get("threads")) for r in (fr, di) if r)
        row = [
            model,
            size,
            threads,
            fmt(fr.get("unet_ms_median"), 2),
            fmt(di.get("unet_ms_median"), 2),
            ratio(fr.get("unet_ms_median"), di.get("unet_ms_median")),
            fmt(fr.get("pipeline_s_median"), 3),
            fmt(di.get("pipeline_s_median"), 3),
            ratio(fr.get("pipeline_s_median"), di.get("pipeline_s_median")),
            fmt(fr.get("peak_rss_mib"), 0),
            fmt(di.get("peak_rss_mib"), 0),
        ]
        print("| " + " | ".join(row) + " |")
    print()
    print("Breakdown (medians): text encode ms, VAE decode ms, load s")
    for model in order:
        for impl, r in results[model].items():
            print(
                f"- {model} {impl}: text {fmt(r.get('text_encode_ms_median'), 2)} ms, "
                f"vae {fmt(r.get('vae_decode_ms_median'), 2)} ms, "
                f"load {fmt(r.get('load_s'), 2)} s, "
                f"rss after load {fmt(r.get('rss_after_load_mib'), 0)} MiB, "
                f"sampler {r.get('sampler')}"
            )
    rows = kernel_rows(lines)
    if rows:
        print_kernels(rows)


if __name__ == "__main__":
    main()
