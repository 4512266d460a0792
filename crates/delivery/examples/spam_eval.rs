//! Scores a labelled corpus with the built-in spam filter (F5), for `bench/spam-eval/run`.
//!
//!   spam_eval MANIFEST
//!
//! MANIFEST has one line per message: `train|test <TAB> spam|ham <TAB> path`. The Bayesian
//! classifier is trained on the `train` lines exactly as IMAP training would (same tokens,
//! same counts), then every `test` message is scored twice: rules only, and rules + Bayes.
//! Prints one line per test message: `path <TAB> label <TAB> rules score <TAB> Bayes
//! probability <TAB> rules+Bayes score`.

use std::collections::HashMap;
use std::io::Write;

use mail_parser::MessageParser;
use postfach_core::mail::bayes::{Evidence, tokens};
use postfach_delivery::spam;

fn main() {
    let manifest = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: spam_eval MANIFEST");
        std::process::exit(2);
    });
    let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| {
        eprintln!("spam_eval: {manifest}: {e}");
        std::process::exit(1);
    });
    let mut counts: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut totals = (0, 0);
    let mut tests = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut f = line.splitn(3, '\t');
        let (split, label, path) = (f.next(), f.next(), f.next());
        let (Some(split), Some(label), Some(path)) = (split, label, path) else {
            eprintln!("spam_eval: bad manifest line {line:?}");
            std::process::exit(1);
        };
        if split == "test" {
            tests.push((label.to_string(), path.to_string()));
            continue;
        }
        let raw = std::fs::read(path).expect("read a training message");
        let Some(msg) = MessageParser::default().parse(&raw) else {
            continue;
        };
        let spam = label == "spam";
        for t in tokens(&msg) {
            let e = counts.entry(t).or_default();
            if spam { e.0 += 1 } else { e.1 += 1 }
        }
        if spam { totals.0 += 1 } else { totals.1 += 1 }
    }
    let mut evidence = Evidence::default();
    evidence.add(counts, totals);
    let out = std::io::stdout();
    let mut out = out.lock();
    for (label, path) in tests {
        let raw = std::fs::read(&path).expect("read a test message");
        let Some(msg) = MessageParser::default().parse(&raw) else {
            writeln!(out, "{path}\t{label}\t0.0\t0.5\t0.0").unwrap();
            continue;
        };
        let rules = spam::score(&msg, 5.0, "eval.invalid", None);
        let p = evidence.spam_probability(&tokens(&msg));
        let both = spam::score(&msg, 5.0, "eval.invalid", p);
        writeln!(
            out,
            "{path}\t{label}\t{:.1}\t{:.4}\t{:.1}",
            rules.score,
            p.unwrap_or(0.5),
            both.score
        )
        .unwrap();
    }
}
