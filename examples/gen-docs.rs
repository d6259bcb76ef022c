//! The man page and shell completions, generated from the same clap definition as `--help`:
//!
//!     cargo run --example gen-docs -- OUTDIR
//!
//! writes OUTDIR/imapfs.1 and OUTDIR/completions/{imapfs.bash,_imapfs,imapfs.fish,...}.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

fn generate(out: &Path) -> std::io::Result<()> {
    let cmd = imapfs::cli::Args::command();
    std::fs::create_dir_all(out.join("completions"))?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(out.join("imapfs.1"), page)?;
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "imapfs", out.join("completions"))?;
    }
    Ok(())
}

fn main() {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: cargo run --example gen-docs -- OUTDIR");
        std::process::exit(2);
    };
    if let Err(e) = generate(Path::new(&out)) {
        eprintln!("gen-docs: {e}");
        std::process::exit(1);
    }
    println!(
        "wrote {0}/imapfs.1 and {0}/completions/",
        Path::new(&out).display()
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn man_page_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        super::generate(dir.path()).unwrap();
        let page = std::fs::read_to_string(dir.path().join("imapfs.1")).unwrap();
        assert!(page.starts_with(".ie"), "{}", &page[..40]);
        for want in [
            "password\\-command",
            "log\\-file",
            "fusermount3 \\-u MOUNTPOINT",
        ] {
            assert!(page.contains(want), "man page lacks {want}");
        }
        let bash = std::fs::read_to_string(dir.path().join("completions/imapfs.bash")).unwrap();
        assert!(bash.contains("--password-command") && bash.contains("--log-file"));
        assert!(dir.path().join("completions/_imapfs").exists());
        assert!(dir.path().join("completions/imapfs.fish").exists());
    }
}
