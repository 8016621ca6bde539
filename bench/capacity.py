"""Capacity on paper (docs/deploy.md): the measured one-host figures carried over to 1,000, 10,000
and 100,000 films a day. Measures nothing itself; reads what bench/inference.py wrote.

    nice .venv/bin/python bench/inference.py --no-portal --json /tmp/inference.json
    .venv/bin/python bench/capacity.py --inference /tmp/inference.json [--portal /tmp/portal.json]

How the figures are carried over (each an assumption, printed with the table):
- a worker core reads `images/s at batch 16 on the whole host / the host's cores` films a second:
  the engine uses every core of its host, and an inference worker on a bigger host gets the same
  share per core (OpenVINO's threads scale close to linearly at batch 16; not measured beyond 2);
- the portal delivers `--drain-ratio` of the engine (the drained backlog of bench/portal_e2e.py:
  0.87-0.96 in the README's runs; read from --portal when given), with uploads on other hosts;
- films arrive within a working day of `--day-hours`, the busiest hour bringing `--peak` times the
  day's average hour, and workers are sized to be at most `--utilisation` busy in that hour, so
  that losing one worker or a burst of retries still drains before the next morning;
- one spare inference host beyond that (a host lost must not stop the service)."""
import argparse
import json
import math
from pathlib import Path

FILMS_PER_DAY = (1_000, 10_000, 100_000)
RUNTIME_NAMES = {"keras": "Keras (TensorFlow)", "openvino_fp32": "OpenVINO fp32", "openvino_bf16": "OpenVINO bf16", "openvino_int8": "OpenVINO int8"}


def per_core_rates(report, drain_ratio):
    """{runtime: (engine images/s on the host, scans per hour per worker core through the portal)}."""
    cores = report["cpu"]["cores"]
    rates = {name: row["batch16"]["images_per_s"] for name, row in report["runtimes"].items()}
    harmonised = report.get("harmonised")
    if harmonised:  # a version trained with the cpu-scratch default harmonises each film before its pass
        rates[harmonised["runtime"].replace("openvino", "OpenVINO") + ", harmonised films"] = 1000 / harmonised["batch16_ms_per_film"]
    return {name: (rate, rate / cores * 3600 * drain_ratio) for name, rate in rates.items()}


def sizing(films_per_day, scans_per_hour_per_core, args):
    peak_hour = films_per_day / args.day_hours * args.peak
    cores = peak_hour / (scans_per_hour_per_core * args.utilisation)
    hosts = math.ceil(cores / args.host_cores) + 1
    return peak_hour, cores, hosts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inference", type=Path, required=True, help="the JSON bench/inference.py wrote (--json)")
    parser.add_argument("--portal", type=Path, help="the JSON bench/portal_e2e.py wrote: its drained backlog's ratio to the engine")
    parser.add_argument("--drain-ratio", type=float, default=0.90, help="the portal's drained throughput against the engine (default 0.90)")
    parser.add_argument("--day-hours", type=float, default=10, help="the working day films arrive in (default 10 h)")
    parser.add_argument("--peak", type=float, default=1.5, help="the busiest hour against the day's average hour (default 1.5)")
    parser.add_argument("--utilisation", type=float, default=0.6, help="how busy workers may be in the busiest hour (default 0.6)")
    parser.add_argument("--host-cores", type=int, default=4, help="cores of an inference host (default 4)")
    args = parser.parse_args()
    report = json.loads(args.inference.read_text())
    if args.portal:
        portal = json.loads(args.portal.read_text())
        # Above 1 is the host drifting between the engine's timings, not the portal beating its engine.
        args.drain_ratio = min(1.0, portal["drain"]["scans_per_s"] / portal["baselines"]["engine_images_per_s"])
    cpu = report["cpu"]
    print(f"From: {cpu['model']}, {cpu['cores']} cores; Xception {report['image_size']} px; load average "
          f"{report['load_average_before']:.1f} before, {report['load_average_after']:.1f} after; drain ratio {args.drain_ratio:.2f}")
    print(f"Assumed: films within {args.day_hours:g} h, busiest hour {args.peak:g}x the average, workers at most "
          f"{args.utilisation:.0%} busy then, {args.host_cores}-core inference hosts, one spare host.\n")
    rates = per_core_rates(report, args.drain_ratio)
    print("| runtime, precision | engine, batch 16, whole host | scans per hour per worker core through the portal |")
    print("| --- | --- | --- |")
    for name, (rate, per_core) in rates.items():
        print(f"| {RUNTIME_NAMES.get(name, name)} | {rate:.1f} images/s | {per_core:,.0f} |")
    print()
    print("| films a day | busiest hour | " + " | ".join(f"{RUNTIME_NAMES.get(name, name)}: cores, hosts" for name in rates) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in rates) + " |")
    for films in FILMS_PER_DAY:
        cells = []
        for name, (_, per_core) in rates.items():
            peak_hour, cores, hosts = sizing(films, per_core, args)
            cells.append(f"{cores:.1f}, {hosts}")
        print(f"| {films:,} | {peak_hour:,.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
