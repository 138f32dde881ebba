//! The documentation runs: every `sh` and `console` block of README.md and docs/*.md, in order,
//! against the built `haven` (see `testkit::docs` for what is substituted). A block that is
//! only illustrative is preceded by `<!-- docs-test: skip (reason) -->` and listed with its
//! reason.

use std::path::Path;

use testkit::docs::{Workspace, blocks, documents};

#[test]
fn every_documented_shell_block_runs() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let haven = Path::new(env!("CARGO_BIN_EXE_haven"));
    let (mut ran, mut skipped, mut failures) = (0, 0, Vec::new());
    for file in documents(&repository) {
        let name = file
            .strip_prefix(&repository)
            .unwrap()
            .display()
            .to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let workspace = Workspace::new(&repository, haven);
        for block in blocks(&name, &text) {
            if let Some(reason) = &block.skip {
                eprintln!("skipped {}: {reason}", block.name);
                skipped += 1;
                continue;
            }
            eprintln!("running {}", block.name);
            match workspace.run(&block) {
                Ok(()) => ran += 1,
                Err(failure) => {
                    // The file's later blocks build on this one.
                    failures.push(failure);
                    break;
                }
            }
        }
    }
    eprintln!("{ran} blocks ran, {skipped} skipped");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran >= 9, "only {ran} blocks ran: were the blocks found?");
}
