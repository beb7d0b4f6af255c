#!/usr/bin/env python3
"""Times diffusers on PyTorch (CPU, float32) for one diffusers-layout model folder and
prints one JSON line with the same keys as `fresco-diffusers-bench`.

What it times (the same work as fresco-diffusers's `SdPipeline::generate_tensor`):
- unet_ms_*: one UNet forward at batch 2 (negative and positive halves of
  classifier-free guidance) at timestep 500;
- text_encode_ms_*: encoding the prompt and the negative prompt (the empty prompt for
  SD 1.x/2.x; zeros for SDXL, as diffusers' force_zeros_for_empty_prompt does);
- vae_decode_ms_*: decoding one image's latents;
- pipeline_s_*: one whole image: text encoding, `--steps` guided steps of the folder's
  scheduler, VAE decode, scaled to [0, 1]. The loop is the one diffusers'
  StableDiffusionPipeline / StableDiffusionXLPipeline run, written out because the test
  folders have no tokenizer (token ids are fed, as fresco's tests do);
- rss_after_load_mib / peak_rss_mib: VmRSS after loading and VmHWM at the end
  (this process includes the Python interpreter and PyTorch's libraries).

Token ids: begin, eight fixed ids ((17 * i + 5) % (vocab - 2) for i in 1..=8), end, padded
with the encoder's pad id to its sequence length -- the ids fresco-diffusers-bench uses.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def memory_mib(field):
    """A kB field of /proc/self/status in MiB (VmHWM: peak resident set size)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="diffusers-layout model folder")
    p.add_argument("--name", help="label of the model in the report")
    p.add_argument("--config", help="label of the generated config, if any")
    p.add_argument("--width", type=int, help="image width (default: native size)")
    p.add_argument("--height", type=int, help="image height (default: native size)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--pipeline-reps", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.reps < 1 or args.pipeline_reps < 1 or args.steps < 1:
        p.error("--reps, --pipeline-reps and --steps must be at least 1")
    if args.guidance <= 1.0:
        p.error("--guidance must be above 1 (the benchmark times guided sampling)")
    return args


def time_ms(warmup, reps, f):
    for _ in range(warmup):
        f()
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        f()
        out.append((time.perf_counter() - started) * 1000.0)
    return out


def prompt_ids(config):
    """Begin, eight fixed ids inside the vocabulary, end (unpadded)."""
    span = max(config.vocab_size - 2, 1)
    return [config.bos_token_id] + [(17 * i + 5) % span for i in range(1, 9)] + [
        config.eos_token_id
    ]


def pad(ids, config):
    """Pads token ids with the encoder's pad id (else its end id) to its sequence length."""
    pad_id = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    return ids + [pad_id] * (config.max_position_embeddings - len(ids))


def main():
    args = parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = args.folder
    if not (folder / "unet" / "config.json").is_file():
        sys.exit(f"{folder}: no unet/config.json (not a diffusers-layout folder)")
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    dtype = torch.float32
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype)
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=dtype)
    text_encoder_2 = None
    if (folder / "text_encoder_2").is_dir():
        text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
            folder, subfolder="text_encoder_2", dtype=dtype
        )
    with open(folder / "scheduler" / "scheduler_config.json", encoding="utf-8") as f:
        scheduler_class = getattr(diffusers, json.load(f)["_class_name"])
    scheduler = scheduler_class.from_pretrained(folder, subfolder="scheduler")
    for m in (unet, vae, text_encoder, text_encoder_2):
        if m is not None:
            m.eval()
    load_s = time.perf_counter() - started
    rss_after_load = memory_mib("VmRSS")

    f = 2 ** (len(vae.config.block_out_channels) - 1)
    native = (unet.config.sample_size or 64) * f
    width = args.width or native
    height = args.height or native
    if width % f or height % f or width <= 0 or height <= 0:
        sys.exit(f"width and height must be positive multiples of {f}")
    sdxl = text_encoder_2 is not None
    c1 = text_encoder.config
    # fresco-diffusers pads the first encoder's prompt ids for each encoder with that encoder's id.
    ids1 = torch.tensor([pad(prompt_ids(c1), c1)])
    empty1 = torch.tensor([pad([c1.bos_token_id, c1.eos_token_id], c1)])
    if sdxl:
        ids2 = torch.tensor([pad(prompt_ids(c1), text_encoder_2.config)])

    def encode():
        if not sdxl:
            cond = text_encoder(ids1)[0]
            uncond = text_encoder(empty1)[0]
            return torch.cat([uncond, cond]), None
        out1 = text_encoder(ids1, output_hidden_states=True)
        out2 = text_encoder_2(ids2, output_hidden_states=True)
        cond = torch.cat([out1.hidden_states[-2], out2.hidden_states[-2]], dim=-1)
        pooled = out2.text_embeds
        return (
            torch.cat([torch.zeros_like(cond), cond]),
            torch.cat([torch.zeros_like(pooled), pooled]),
        )

    channels = unet.config.in_channels
    latent_hw = (height // f, width // f)
    time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype).repeat(2, 1)
    generator = torch.Generator().manual_seed(args.seed)
    latents = torch.randn((2, channels) + latent_hw, generator=generator, dtype=dtype)
    sf = vae.config.scaling_factor

    def added(pooled):
        return {"text_embeds": pooled, "time_ids": time_ids} if sdxl else None

    def pipeline():
        context, pooled = encode()
        scheduler.set_timesteps(args.steps)
        x = torch.randn((1, channels) + latent_hw, generator=generator, dtype=dtype)
        x = x * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            model_in = scheduler.scale_model_input(torch.cat([x, x]), t)
            pred = unet(
                model_in, t, encoder_hidden_states=context, added_cond_kwargs=added(pooled)
            ).sample
            uncond, text = pred.chunk(2)
            pred = uncond + args.guidance * (text - uncond)
            x = scheduler.step(pred, t, x).prev_sample
        image = vae.decode(x / sf).sample
        return (image / 2 + 0.5).clamp(0, 1)

    with torch.inference_mode():
        context, pooled = encode()
        t500 = torch.tensor(500)
        unet_ms = time_ms(
            args.warmup,
            args.reps,
            lambda: unet(
                latents, t500, encoder_hidden_states=context, added_cond_kwargs=added(pooled)
            ).sample,
        )
        text_encode_ms = time_ms(args.warmup, args.reps, encode)
        vae_decode_ms = time_ms(
            args.warmup, args.reps, lambda: vae.decode(latents[:1] / sf).sample
        )
        pipeline_ms = time_ms(args.warmup, args.pipeline_reps, pipeline)

    report = {
        "event": "result",
        "impl": "diffusers",
        "model": args.name or folder.resolve().name,
        "folder": str(folder),
        "config": args.config,
        "sdxl": sdxl,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "attention": type(next(iter(unet.attn_processors.values()))).__name__
        if unet.attn_processors
        else None,
        "device": "cpu",
        "dtype": "f32",
        "threads": torch.get_num_threads(),
        "width": width,
        "height": height,
        "latent": [channels, latent_hw[0], latent_hw[1]],
        "steps": args.steps,
        "guidance": args.guidance,
        "sampler": scheduler_class.__name__,
        "warmup": args.warmup,
        "reps": args.reps,
        "pipeline_reps": args.pipeline_reps,
        "unet_batch": 2,
        "load_s": load_s,
        "unet_ms_median": statistics.median(unet_ms),
        "unet_ms_min": min(unet_ms),
        "unet_ms": unet_ms,
        "text_encode_ms_median": statistics.median(text_encode_ms),
        "vae_decode_ms_median": statistics.median(vae_decode_ms),
        "pipeline_s_median": statistics.median(pipeline_ms) / 1000.0,
        "pipeline_s_min": min(pipeline_ms) / 1000.0,
        "rss_after_load_mib": rss_after_load,
        "peak_rss_mib": memory_mib("VmHWM"),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
