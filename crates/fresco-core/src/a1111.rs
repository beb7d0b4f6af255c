//! The `parameters` text of AUTOMATIC1111's stable-diffusion-webui, which
//! standard image metadata readers (the webui's PNG Info, ComfyUI,
//! InvokeAI, Civitai, exiftool users) parse: fresco writes it into every
//! PNG beside its own exact chunks, naming samplers the way the webui does.

/// What one image's `parameters` text says.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameters<'a> {
    pub prompt: &'a str,
    pub negative_prompt: &'a str,
    pub steps: u32,
    /// fresco's sampler name (`euler_a`, `dpmpp_2m`...).
    pub sampler: &'a str,
    /// The schedule's `karras_sigmas` knob, when set.
    pub karras_sigmas: Option<bool>,
    pub guidance: f32,
    /// The image's own seed (the one that regenerates it alone).
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    /// The first 10 hex digits of the weights' SHA-256 (the webui's
    /// "AutoV2" hash), when known.
    pub model_hash: Option<&'a str>,
    pub model: &'a str,
}

impl Parameters<'_> {
    /// The text, in the webui's layout: the prompt, a `Negative prompt:`
    /// line when there is one, then `Key: value` pairs on one line.
    pub fn to_text(&self) -> String {
        let mut text = String::from(self.prompt);
        if !self.negative_prompt.is_empty() {
            text.push_str("\nNegative prompt: ");
            text.push_str(self.negative_prompt);
        }
        text.push_str(&format!(
            "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}",
            self.steps,
            sampler_name(self.sampler, self.karras_sigmas),
            self.guidance,
            self.seed,
            self.width,
            self.height,
        ));
        if let Some(hash) = self.model_hash {
            text.push_str(&format!(", Model hash: {hash}"));
        }
        text.push_str(&format!(", Model: {}", self.model));
        text
    }
}

/// The webui's name of fresco's `sampler`: `Euler a`, `DPM++ 2M Karras`...
/// A Karras schedule (the sampler's own, or `karras_sigmas` set) adds
/// ` Karras`, as the webui writes it. A name fresco does not know is kept.
pub fn sampler_name(sampler: &str, karras_sigmas: Option<bool>) -> String {
    let (base, karras) = match sampler {
        "ddim" => ("DDIM", false),
        "ddpm" => ("DDPM", false),
        "euler" | "flow_euler" => ("Euler", false),
        "euler_a" => ("Euler a", false),
        "heun" => ("Heun", false),
        "dpmpp_2m" => ("DPM++ 2M", false),
        "dpmpp_2m_karras" => ("DPM++ 2M", true),
        "unipc" => ("UniPC", false),
        other => (other, false),
    };
    if karras || karras_sigmas == Some(true) {
        format!("{base} Karras")
    } else {
        base.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters() -> Parameters<'static> {
        Parameters {
            prompt: "a red circle",
            negative_prompt: "",
            steps: 20,
            sampler: "euler_a",
            karras_sigmas: None,
            guidance: 7.5,
            seed: 42,
            width: 512,
            height: 768,
            model_hash: Some("0123456789"),
            model: "tiny-sd",
        }
    }

    #[test]
    fn samplers_are_named_as_the_webui_names_them() {
        assert_eq!(sampler_name("euler_a", None), "Euler a");
        assert_eq!(sampler_name("dpmpp_2m_karras", None), "DPM++ 2M Karras");
        assert_eq!(sampler_name("dpmpp_2m", Some(true)), "DPM++ 2M Karras");
        assert_eq!(sampler_name("dpmpp_2m", Some(false)), "DPM++ 2M");
        assert_eq!(sampler_name("flow_euler", None), "Euler");
        assert_eq!(sampler_name("unipc", None), "UniPC");
        assert_eq!(sampler_name("lcm", None), "lcm");
    }

    #[test]
    fn the_text_follows_the_webui_layout() {
        assert_eq!(
            parameters().to_text(),
            "a red circle\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, \
             Size: 512x768, Model hash: 0123456789, Model: tiny-sd"
        );
        let with_negative = Parameters {
            negative_prompt: "blurry",
            model_hash: None,
            ..parameters()
        };
        assert_eq!(
            with_negative.to_text(),
            "a red circle\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, \
             Seed: 42, Size: 512x768, Model: tiny-sd"
        );
    }
}
