//! Prompt text → padded CLIP token ids, from `vocab.json` + `merges.txt`.

use fresco_diffusers::Error;
use fresco_diffusers::tokenizer::PromptTokenizer;

fn write_tokenizer(dir: &std::path::Path, pad: Option<&str>) {
    let vocab = r#"{"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3,
        "ab</w>": 4, "a": 5, "b": 6, "!</w>": 7, "!": 8}"#;
    std::fs::write(dir.join("vocab.json"), vocab).expect("vocab");
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\na b</w>\n").expect("merges");
    if let Some(pad) = pad {
        let config = format!(r#"{{"pad_token": {{"content": "{pad}"}}}}"#);
        std::fs::write(dir.join("tokenizer_config.json"), config).expect("config");
    }
}

#[test]
fn clip_bpe_from_vocab_and_merges() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_tokenizer(tmp.path(), None);
    let t = PromptTokenizer::load(tmp.path()).expect("load");
    // Lowercased, whitespace-collapsed, merged, wrapped in begin/end, padded with end.
    assert_eq!(
        t.encode("AB \n a!", 8).expect("encode"),
        vec![0, 4, 2, 7, 1, 1, 1, 1]
    );
    assert_eq!(t.encode("", 4).expect("encode"), vec![0, 1, 1, 1]);
    // Truncation keeps room for the end token.
    assert_eq!(t.encode("a a a a", 4).expect("encode"), vec![0, 2, 2, 1]);
}

#[test]
fn pad_token_comes_from_tokenizer_config() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_tokenizer(tmp.path(), Some("!"));
    let t = PromptTokenizer::load(tmp.path()).expect("load");
    assert_eq!(t.encode("b", 5).expect("encode"), vec![0, 3, 1, 8, 8]);
}

#[test]
fn empty_folder_names_tokenizer_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    match PromptTokenizer::load(tmp.path()) {
        Err(Error::NoTokenizer { path }) => assert!(path.ends_with("tokenizer.json")),
        other => panic!("expected NoTokenizer, got {other:?}"),
    }
}
