//! The built-in word list used by randomly initialised models.
//!
//! Trained models ship their own list in `config.json` (`text.vocab`); this one only
//! has to be stable, because token ids (and so the random model's output for a
//! prompt) depend on word positions. Append new words at the end, never reorder.

const WORDS: &str = "
a an the of in on at with and or by for to from over under near behind above below
between inside outside beside through into across along around without
red orange yellow green blue purple pink brown black white gray grey gold golden silver
dark light bright pale vivid colorful monochrome pastel neon warm cool
cat dog bird fish horse cow sheep pig rabbit fox wolf bear lion tiger elephant monkey
owl eagle duck chicken frog snake turtle whale dolphin shark butterfly bee dragon unicorn
man woman boy girl child baby person people king queen knight wizard witch robot
astronaut soldier farmer chef doctor artist musician dancer pirate ninja warrior
tree trees flower flowers grass forest jungle garden leaf leaves rose sunflower cactus
mountain mountains hill river lake sea ocean beach island desert valley waterfall cave
sky cloud clouds sun moon star stars rain snow storm fog wind lightning rainbow sunset
sunrise night day morning evening winter summer spring autumn fire water ice stone rock
city town village street road bridge house castle tower church temple building skyscraper
room kitchen bedroom library window door wall roof floor table chair bed lamp
car bus train boat ship plane bicycle motorcycle truck rocket spaceship
apple banana orange cake bread coffee tea cup bottle book sword shield crown hat mask
painting photo photograph portrait landscape sketch drawing illustration render
watercolor oil acrylic digital pixel art anime cartoon comic realistic photorealistic
abstract surreal minimalist detailed intricate simple cinematic dramatic epic cute
beautiful ugly scary happy sad angry calm peaceful mysterious magical ancient futuristic
old new modern vintage retro medieval fantasy science fiction cyberpunk steampunk
big small large tiny huge giant tall short long wide round square
high low soft hard smooth rough shiny glowing wet dry hot cold empty full
lighting shadow shadows reflection glow bokeh depth field focus blur sharp
closeup close up view wide angle aerial top side front back macro shot
style masterpiece quality best hd resolution studio trending by
one two three four five many several some every
is are was be being has have having very
sitting standing walking running flying swimming sleeping eating reading playing
holding wearing looking smiling dancing fighting
glass metal wood wooden paper plastic crystal marble
space planet galaxy nebula universe earth world
";

/// The built-in vocabulary, in id order (word `i` gets token id `i + 1`), deduplicated.
pub fn builtin_vocab() -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    WORDS
        .split_whitespace()
        .filter(|w| seen.insert(*w))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_is_a_few_hundred_unique_lowercase_words() {
        let v = builtin_vocab();
        assert!(v.len() >= 300, "only {} words", v.len());
        let set: std::collections::HashSet<_> = v.iter().collect();
        assert_eq!(set.len(), v.len());
        assert!(v.iter().all(|w| {
            w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }));
        assert!(v.contains(&"cat".to_owned()));
    }
}
