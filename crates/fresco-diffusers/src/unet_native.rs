//! fresco's own `UNet2DConditionModel`, assembled from the `unet_layers` module by the
//! resolved config: per-level heads and transformer depths, linear or convolutional
//! projections, and SDXL's `text_time` added embedding (pooled text vector plus
//! sinusoidal features of the six size/crop ids, added to the timestep embedding).

use candle_core::{D, Tensor};
use candle_nn::{Module, VarBuilder};
use fresco_kernels::{Conv2d, GroupNorm};

use crate::unet_config::{ResolvedUnet, UnetLevel};
use crate::unet_layers::{
    Downsample, Resnet, TimestepEmbedding, Timesteps, Transformer2D, TransformerSpec, Upsample,
    conv,
};

type R<T> = candle_core::Result<T>;

#[derive(Debug)]
struct Level {
    resnets: Vec<Resnet>,
    attentions: Vec<Transformer2D>,
}

impl Level {
    fn forward(&self, i: usize, xs: &Tensor, temb: &Tensor, ctx: &Tensor) -> R<Tensor> {
        let xs = self.resnets[i].forward(xs, temb)?;
        match self.attentions.get(i) {
            Some(a) => a.forward(&xs, ctx),
            None => Ok(xs),
        }
    }
}

#[derive(Debug)]
struct AddedEmbedding {
    time_proj: Timesteps,
    embedding: TimestepEmbedding,
}

/// A UNet built by fresco (used where candle-transformers' cannot express the config).
#[derive(Debug)]
pub struct NativeUnet {
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    added: Option<AddedEmbedding>,
    conv_in: Conv2d,
    down: Vec<(Level, Option<Downsample>)>,
    mid_resnets: Vec<Resnet>,
    mid_attentions: Vec<Transformer2D>,
    up: Vec<(Level, Option<Upsample>)>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// The timestep embedding and, for SDXL, the added text/time embedding.
struct TimeEmbeddings {
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    added: Option<AddedEmbedding>,
}

impl TimeEmbeddings {
    /// Builds `time_embedding` (and `add_embedding` when the config asks for
    /// SDXL's text/time embedding), each projecting into `temb` channels.
    fn new(vb: &VarBuilder, c: &ResolvedUnet, temb: usize) -> R<Self> {
        let raw = &c.raw;
        let ch0 = c.levels[0].channels;
        let time_proj = Timesteps {
            channels: ch0,
            flip_sin_to_cos: raw.flip_sin_to_cos,
            freq_shift: raw.freq_shift,
        };
        let time_embedding = TimestepEmbedding::new(vb.pp("time_embedding"), ch0, temb)?;
        let added = match (
            c.text_time,
            raw.addition_time_embed_dim,
            raw.projection_class_embeddings_input_dim,
        ) {
            (true, Some(dim), Some(input)) => Some(AddedEmbedding {
                time_proj: Timesteps {
                    channels: dim,
                    flip_sin_to_cos: raw.flip_sin_to_cos,
                    freq_shift: raw.freq_shift,
                },
                embedding: TimestepEmbedding::new(vb.pp("add_embedding"), input, temb)?,
            }),
            _ => None,
        };
        Ok(Self {
            time_proj,
            time_embedding,
            added,
        })
    }
}

/// What every block of one UNet is built with: its resolved config, the
/// width of the timestep embedding the resnets read, and the group norm's
/// groups and epsilon.
struct BlockBuilder<'a> {
    c: &'a ResolvedUnet,
    temb: usize,
    groups: usize,
    eps: f64,
}

impl BlockBuilder<'_> {
    /// A resnet from `cin` to `cout` channels.
    fn resnet(&self, vb: VarBuilder, cin: usize, cout: usize) -> R<Resnet> {
        Resnet::new(vb, cin, cout, Some(self.temb), self.groups, self.eps)
    }

    /// A cross-attention transformer over a level's channels, with its heads
    /// and depth.
    fn transformer(&self, vb: VarBuilder, level: &UnetLevel) -> R<Transformer2D> {
        Transformer2D::new(
            vb,
            TransformerSpec {
                channels: level.channels,
                heads: level.heads,
                depth: level.transformer_layers,
                context_dim: self.c.cross_attention_dim,
                groups: self.groups,
                norm_eps: 1e-5,
                linear_projection: self.c.raw.use_linear_projection,
            },
        )
    }

    /// One level's `layers` resnets (resnet `j` takes `inputs(j)` channels),
    /// each followed by a transformer when the level has cross-attention.
    fn level(
        &self,
        vb: &VarBuilder,
        level: &UnetLevel,
        layers: usize,
        inputs: impl Fn(usize) -> usize,
    ) -> R<Level> {
        let mut resnets = Vec::with_capacity(layers);
        let mut attentions = Vec::new();
        for j in 0..layers {
            resnets.push(self.resnet(vb.pp(format!("resnets.{j}")), inputs(j), level.channels)?);
            if level.cross_attention {
                attentions.push(self.transformer(vb.pp(format!("attentions.{j}")), level)?);
            }
        }
        Ok(Level {
            resnets,
            attentions,
        })
    }

    /// `down_blocks`: each level from the previous level's channels, every
    /// level but the last ending in a downsampler.
    fn down_blocks(&self, vb: &VarBuilder) -> R<Vec<(Level, Option<Downsample>)>> {
        let c = self.c;
        let n = c.levels.len();
        let mut down = Vec::with_capacity(n);
        let mut cin = c.levels[0].channels;
        for (i, level) in c.levels.iter().enumerate() {
            let vb = vb.pp(format!("down_blocks.{i}"));
            let blocks = self.level(&vb, level, c.layers_per_block, |j| {
                if j == 0 { cin } else { level.channels }
            })?;
            let sampler = if i + 1 < n {
                Some(Downsample::new(
                    vb.pp("downsamplers.0"),
                    level.channels,
                    c.raw.downsample_padding,
                )?)
            } else {
                None
            };
            down.push((blocks, sampler));
            cin = level.channels;
        }
        Ok(down)
    }

    /// `mid_block`: resnet, transformer, resnet at the deepest level's
    /// channels.
    fn mid_block(&self, vb: &VarBuilder) -> R<(Vec<Resnet>, Vec<Transformer2D>)> {
        let last = self.c.levels[self.c.levels.len() - 1];
        let vb_mid = vb.pp("mid_block");
        let first = self.resnet(vb_mid.pp("resnets.0"), last.channels, last.channels)?;
        let attention = self.transformer(vb_mid.pp("attentions.0"), &last)?;
        let second = self.resnet(vb_mid.pp("resnets.1"), last.channels, last.channels)?;
        Ok((vec![first, second], vec![attention]))
    }

    /// `up_blocks`: the levels deepest first, each resnet also taking a skip
    /// connection from the way down, every level but the last ending in an
    /// upsampler.
    fn up_blocks(&self, vb: &VarBuilder) -> R<Vec<(Level, Option<Upsample>)>> {
        let c = self.c;
        let n = c.levels.len();
        let mut up = Vec::with_capacity(n);
        let mut prev = c.levels[n - 1].channels;
        for i in 0..n {
            let level = c.levels[n - 1 - i];
            let skip_in = c.levels[(n - 1 - i).saturating_sub(1)].channels;
            let vb = vb.pp(format!("up_blocks.{i}"));
            let layers = c.layers_per_block + 1;
            let blocks = self.level(&vb, &level, layers, |j| {
                let skip = if j == layers - 1 {
                    skip_in
                } else {
                    level.channels
                };
                let rin = if j == 0 { prev } else { level.channels };
                rin + skip
            })?;
            let sampler = if i + 1 < n {
                Some(Upsample::new(vb.pp("upsamplers.0"), level.channels)?)
            } else {
                None
            };
            up.push((blocks, sampler));
            prev = level.channels;
        }
        Ok(up)
    }
}

impl NativeUnet {
    /// Builds the UNet a resolved config describes from the weights under
    /// `vb`: time embeddings, input convolution, down, mid and up blocks,
    /// output norm and convolution.
    pub(crate) fn new(vb: VarBuilder, c: &ResolvedUnet) -> R<Self> {
        let raw = &c.raw;
        let ch0 = c.levels[0].channels;
        let temb = ch0 * 4;
        let blocks = BlockBuilder {
            c,
            temb,
            groups: raw.norm_num_groups,
            eps: raw.norm_eps,
        };
        let time = TimeEmbeddings::new(&vb, c, temb)?;
        let conv_in = conv(vb.pp("conv_in"), raw.in_channels, ch0, 3, 1, 1)?;
        let down = blocks.down_blocks(&vb)?;
        let (mid_resnets, mid_attentions) = blocks.mid_block(&vb)?;
        let up = blocks.up_blocks(&vb)?;
        let conv_norm_out =
            GroupNorm::load(vb.pp("conv_norm_out"), blocks.groups, ch0, blocks.eps)?;
        let conv_out = conv(vb.pp("conv_out"), ch0, raw.out_channels, 3, 1, 1)?;
        Ok(Self {
            time_proj: time.time_proj,
            time_embedding: time.time_embedding,
            added: time.added,
            conv_in,
            down,
            mid_resnets,
            mid_attentions,
            up,
            conv_norm_out,
            conv_out,
        })
    }

    /// Whether the model takes SDXL's added text/time embedding.
    pub fn takes_text_time(&self) -> bool {
        self.added.is_some()
    }

    /// One noise prediction. `text_time` is `(text_embeds [b, d], time_ids [b, k])`.
    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        timestep: f64,
        context: &Tensor,
        text_time: Option<(&Tensor, &Tensor)>,
    ) -> R<Tensor> {
        let (b, _, _, _) = xs.dims4()?;
        let dtype = xs.dtype();
        // Every image of the batch is at the same timestep: its embedding is computed once,
        // `[1, temb]`, and broadcast. This also keeps an image's result independent of the
        // batch it is in (a product over `b` rows may sum in another order than over one).
        let t = (Tensor::ones(1, dtype, xs.device())? * timestep)?;
        let mut emb = self.time_embedding.forward(&self.time_proj.forward(&t)?)?;
        if let (Some(added), Some((text_embeds, time_ids))) = (&self.added, text_time) {
            let ids = time_ids.to_dtype(dtype)?.flatten_all()?;
            let time_embeds = added.time_proj.forward(&ids)?.reshape((b, ()))?;
            let add = Tensor::cat(&[text_embeds.to_dtype(dtype)?, time_embeds], D::Minus1)?;
            emb = emb.broadcast_add(&added.embedding.forward(&add)?)?;
        }

        let mut xs = self.conv_in.forward(xs)?;
        let mut skips = vec![xs.clone()];
        for (level, sampler) in &self.down {
            for i in 0..level.resnets.len() {
                xs = level.forward(i, &xs, &emb, context)?;
                skips.push(xs.clone());
            }
            if let Some(s) = sampler {
                xs = s.forward(&xs)?;
                skips.push(xs.clone());
            }
        }

        xs = self.mid_resnets[0].forward(&xs, &emb)?;
        for (attn, resnet) in self.mid_attentions.iter().zip(&self.mid_resnets[1..]) {
            xs = resnet.forward(&attn.forward(&xs, context)?, &emb)?;
        }

        for (level, sampler) in &self.up {
            for i in 0..level.resnets.len() {
                let Some(skip) = skips.pop() else {
                    return Err(candle_core::Error::Msg(
                        "unet skip connections ran out".into(),
                    ));
                };
                xs = Tensor::cat(&[&xs, &skip], 1)?;
                xs = level.forward(i, &xs, &emb, context)?;
            }
            if let Some(s) = sampler {
                let size = skips.last().map(|t| t.dims4()).transpose()?;
                xs = s.forward(&xs, size.map(|(_, _, h, w)| (h, w)))?;
            }
        }
        self.conv_out
            .forward(&self.conv_norm_out.forward_silu(&xs)?)
    }
}
