//! `edgepurge package`: a function zip ready to upload. Both platforms run an executable
//! named `bootstrap` at the zip's root; edgepurge started under that name with no arguments
//! runs as the function, with the config beside it.

use crate::config::Config;
use crate::secret::SecretSource;
use std::io::Write;
use std::path::Path;

/// The config's name in the zip.
pub const CONFIG_NAME: &str = "edgepurge.toml";

/// Largest zip either platform takes in a direct upload (SCF `Code.ZipFile`, Lambda).
const MAX_UPLOAD: u64 = 50 * 1024 * 1024;

/// Writes `binary` as `bootstrap` (mode 755) and `config_text` as `edgepurge.toml` into a new
/// zip at `out`; returns its size. The zip is written beside `out` and renamed into place.
pub fn write_zip(binary: &Path, config_text: &str, out: &Path) -> anyhow::Result<u64> {
    use anyhow::Context;
    let exe = std::fs::read(binary)
        .with_context(|| format!("cannot read the binary {}", binary.display()))?;
    if elf_machine(&exe).is_none() {
        anyhow::bail!(
            "{} is not a Linux executable (ELF); give the edgepurge binary built for the \
             platform",
            binary.display()
        );
    }
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(binary), std::fs::canonicalize(out)) {
        if a == b {
            anyhow::bail!("the zip would overwrite the binary {}", binary.display());
        }
    }
    let tmp = out.with_extension("zip.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let opts = |mode: u32| {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode)
    };
    let result = (|| -> anyhow::Result<()> {
        zip.start_file("bootstrap", opts(0o755))?;
        zip.write_all(&exe)?;
        zip.start_file(CONFIG_NAME, opts(0o644))?;
        zip.write_all(config_text.as_bytes())?;
        let file = zip.finish()?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("cannot write {}", tmp.display())));
    }
    if let Err(e) = std::fs::rename(&tmp, out) {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::anyhow!(
            "cannot move {} to {}: {e}",
            tmp.display(),
            out.display()
        ));
    }
    Ok(std::fs::metadata(out)?.len())
}

/// The machine of a 64-bit little-endian ELF executable (`e_machine`: 62 x86-64, 183
/// AArch64); `None` when it is not one.
pub fn elf_machine(binary: &[u8]) -> Option<u16> {
    if !binary.starts_with(b"\x7fELF") || binary.get(4) != Some(&2) || binary.get(5) != Some(&1) {
        return None;
    }
    let bytes = binary.get(18..20)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

/// Whether an ELF binary asks for the glibc loader (a static or musl build does not).
pub fn needs_glibc(binary: &[u8]) -> bool {
    binary.starts_with(b"\x7fELF")
        && binary
            .windows(b"ld-linux-x86-64.so.2".len())
            .any(|w| w == b"ld-linux-x86-64.so.2")
}

/// What may keep the packaged function from working, as sentences.
pub fn warnings(cfg: &Config, binary: &Path, output: &Path, scf: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut files: Vec<(String, &SecretSource)> = Vec::new();
    for (name, p) in &cfg.providers {
        files.extend(
            p.secrets()
                .into_iter()
                .map(|s| (format!("providers.{name}"), s)),
        );
    }
    files.extend(
        cfg.function
            .token
            .iter()
            .map(|s| ("function".to_owned(), s)),
    );
    for (at, s) in files {
        if let SecretSource::File(path) = s {
            out.push(format!(
                "{at} reads {}: a function has no such file; take the secret from the \
                 function's environment (*_env)",
                path.display()
            ));
        }
    }
    if let Ok(bytes) = std::fs::read(binary) {
        match (elf_machine(&bytes), scf) {
            (Some(62), _) => {}
            (Some(183), false) => out.push(
                "the binary is for arm64: create the Lambda function with --architectures \
                 arm64"
                    .to_owned(),
            ),
            (Some(m), true) => out.push(format!(
                "the binary is not for x86-64 (ELF machine {m}); SCF runs x86-64"
            )),
            (m, false) => out.push(format!(
                "the binary is for neither x86-64 nor arm64 (ELF machine {m:?})"
            )),
            (None, true) => {}
        }
        if needs_glibc(&bytes) {
            out.push(if scf {
                "the binary links glibc dynamically; SCF runs CentOS 7 (glibc 2.17): package \
                 a static build (cargo build --release --target x86_64-unknown-linux-musl)"
                    .to_owned()
            } else {
                "the binary links glibc dynamically; Lambda's provided.al2023 has glibc 2.34: \
                 package a static build (cargo build --release --target \
                 x86_64-unknown-linux-musl) unless this one was built on an older glibc"
                    .to_owned()
            });
        }
    }
    if let Ok(meta) = std::fs::metadata(output) {
        if meta.len() > MAX_UPLOAD {
            out.push(format!(
                "the zip is {} MB, over the 50 MB direct upload limit: package a release \
                 build, or upload through a bucket",
                meta.len() / (1024 * 1024)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of a 64-bit little-endian x86-64 ELF executable.
    const ELF_HEAD: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";

    #[test]
    fn a_zip_holds_an_executable_bootstrap_and_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("edgepurge");
        let mut elf = ELF_HEAD.to_vec();
        elf.extend_from_slice(b" fake binary /lib64/ld-linux-x86-64.so.2");
        std::fs::write(&bin, &elf).unwrap();
        assert_eq!(elf_machine(&elf), Some(62));
        let out = dir.path().join("function.zip");
        let size = write_zip(&bin, "[[rules]]\n", &out).unwrap();
        assert!(size > 0);
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        assert_eq!(names, ["bootstrap", CONFIG_NAME]);
        let boot = zip.by_name("bootstrap").unwrap();
        assert_eq!(boot.unix_mode().map(|m| m & 0o777), Some(0o755));
        drop(boot);
        let mut cfg = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(CONFIG_NAME).unwrap(), &mut cfg).unwrap();
        assert_eq!(cfg, "[[rules]]\n");
        assert!(!dir.path().join("function.zip.partial").exists());
        assert!(needs_glibc(&std::fs::read(&bin).unwrap()));
        assert!(!needs_glibc(ELF_HEAD));
        assert_eq!(elf_machine(b"#!/bin/sh"), None);
    }

    #[test]
    fn a_missing_binary_is_named_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("function.zip");
        let err = write_zip(&dir.path().join("nope"), "", &out).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read the binary"),
            "{err:#}"
        );
        assert!(!out.exists());
    }
    #[test]
    fn what_is_not_a_binary_or_would_overwrite_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let out = dir.path().join("function.zip");
        let err = write_zip(&script, "", &out).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a Linux executable"),
            "{err:#}"
        );
        assert!(!out.exists());

        let bin = dir.path().join("edgepurge");
        std::fs::write(&bin, ELF_HEAD).unwrap();
        let err = write_zip(&bin, "", &bin).unwrap_err();
        assert!(
            format!("{err:#}").contains("overwrite the binary"),
            "{err:#}"
        );
        assert!(std::fs::read(&bin).unwrap().starts_with(b"\x7fELF"));

        // An output that is a directory: refused, and no partial file is left behind.
        let err = write_zip(&bin, "", dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("cannot"), "{err:#}");
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
