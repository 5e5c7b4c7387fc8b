//! `ls`, `stat`, `cat`, `md5sum`, `mkdir`, `chmod`, `chown` and `cp`.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use phoenix_client::{Client, Progress, Transfer, UploadOptions};
use phoenix_proto::types::files::FileStat;

use crate::output::{self, Align, Table};
use crate::{Result, Usage};

/// `ls [-l] PATH`.
pub fn ls(client: &Client, path: &str, long: bool, json: bool) -> Result {
    let path = Path::new(path);
    let top = client.file_stat(path)?;
    let entries = if top.isdir {
        client.list_dir(path)?
    } else {
        vec![FileStat {
            name: path.display().to_string(),
            ..top
        }]
    };
    if json {
        return Ok(output::json(&entries)?);
    }
    if !long {
        let mut out = io::stdout().lock();
        for e in &entries {
            writeln!(out, "{}", e.name)?;
        }
        return Ok(());
    }
    let now = chrono::Local::now();
    let mut t = Table::bare(&[
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Left,
        Align::Left,
    ]);
    for e in &entries {
        let s = &e.stat;
        t.row(vec![
            output::mode(s.Mode),
            s.Nlink.to_string(),
            s.Uid.to_string(),
            s.Gid.to_string(),
            output::size(u64::try_from(s.Size).unwrap_or(0)),
            output::ls_time(s.Mtim.Sec, now),
            e.name.clone(),
        ]);
    }
    Ok(t.print()?)
}

fn kind(mode: u32) -> &'static str {
    match mode & 0o170000 {
        0o040000 => "directory",
        0o120000 => "symbolic link",
        0o020000 => "character special file",
        0o060000 => "block special file",
        0o010000 => "fifo",
        0o140000 => "socket",
        _ => "regular file",
    }
}

/// `stat PATH`.
pub fn stat(client: &Client, path: &str, json: bool) -> Result {
    let st = client.file_stat(Path::new(path))?;
    if json {
        return Ok(output::json(&st)?);
    }
    let s = &st.stat;
    let mut t = Table::bare(&[Align::Left, Align::Left]);
    let mut row = |k: &str, v: String| t.row(vec![format!("{k}:"), v]);
    row("File", path.to_string());
    row("Type", kind(s.Mode).to_string());
    row(
        "Size",
        format!(
            "{} ({})",
            s.Size,
            output::size(u64::try_from(s.Size).unwrap_or(0))
        ),
    );
    row(
        "Mode",
        format!("{:04o} ({})", s.Mode & 0o7777, output::mode(s.Mode)),
    );
    row("Uid", s.Uid.to_string());
    row("Gid", s.Gid.to_string());
    row("Links", s.Nlink.to_string());
    row("Inode", s.Ino.to_string());
    row("Device", format!("{:x}h/{}d", s.Dev, s.Dev));
    row("Blocks", format!("{} (IO block {})", s.Blocks, s.Blksize));
    row("Access", output::time(s.Atim.Sec));
    row("Modify", output::time(s.Mtim.Sec));
    row("Change", output::time(s.Ctim.Sec));
    Ok(t.print()?)
}

/// `cat PATH`: the bytes to stdout, streamed.
pub fn cat(client: &Client, path: &str, json: bool) -> Result {
    if json {
        let data = client.read_file(Path::new(path))?;
        use base64::Engine as _;
        return Ok(output::json(&serde_json::json!({
            "path": path,
            "size": data.len(),
            "bufb64": base64::engine::general_purpose::STANDARD.encode(&data),
        }))?);
    }
    let mut out = io::stdout().lock();
    client
        .copy_to(Path::new(path), &mut out)
        .map_err(broken_pipe_as_io)?;
    Ok(out.flush()?)
}

/// A local write error on stdout (`| head`) surfaces as an `io::Error`, so `main`
/// can recognise a closed pipe.
fn broken_pipe_as_io(e: phoenix_client::ClientError) -> Box<dyn std::error::Error + Send + Sync> {
    match e {
        phoenix_client::ClientError::Local { source, .. }
            if source.kind() == io::ErrorKind::BrokenPipe =>
        {
            Box::new(source)
        }
        other => Box::new(other),
    }
}

/// `md5sum PATH`, printed as md5sum prints it.
pub fn md5sum(client: &Client, path: &str, json: bool) -> Result {
    let md5 = client.file_md5sum(Path::new(path))?;
    if json {
        output::json(&serde_json::json!({"path": path, "md5": md5}))?;
    } else {
        println!("{md5}  {path}");
    }
    Ok(())
}

/// `md5sum PATH` against an agent without an MD5 command (the qemu-ga dialect): the
/// file is read through the agent and hashed here.
pub fn md5sum_by_reading(client: &Client, path: &str, json: bool) -> Result {
    let t = client.download_to(Path::new(path), &mut std::io::sink(), &mut ())?;
    if json {
        output::json(&serde_json::json!({"path": path, "md5": t.md5}))?;
    } else {
        println!("{}  {path}", t.md5);
    }
    Ok(())
}

/// Prints `true` for `--json`, nothing otherwise (as mkdir and chmod do).
fn done(json: bool) -> Result {
    if json {
        output::json(&true)?;
    }
    Ok(())
}

/// `mkdir [-m MODE] PATH` (with parents).
pub fn mkdir(client: &Client, path: &str, mode: Option<u32>, json: bool) -> Result {
    client.directory_create(Path::new(path), mode)?;
    done(json)
}

/// `chmod MODE PATH`.
pub fn chmod(client: &Client, path: &str, mode: u32, json: bool) -> Result {
    client.file_chmod(Path::new(path), mode)?;
    done(json)
}

/// `chown UID:GID PATH`.
pub fn chown(client: &Client, path: &str, (uid, gid): (i64, i64), json: bool) -> Result {
    client.file_chown(Path::new(path), uid, gid)?;
    done(json)
}

/// One end of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Guest(PathBuf),
    Local(PathBuf),
    Std,
}

fn end(arg: &str) -> End {
    match arg.strip_prefix("guest:") {
        Some(p) => End::Guest(PathBuf::from(p)),
        None if arg == "-" => End::Std,
        None => End::Local(PathBuf::from(arg)),
    }
}

/// `DIR/` + the source's file name, when the destination is a directory (cp's rule).
fn into_dir(dst: &Path, src: Option<&Path>) -> Result<PathBuf> {
    match src.and_then(Path::file_name) {
        Some(name) => Ok(dst.join(name)),
        None => Err(Usage(format!(
            "{} is a directory: name the destination file",
            dst.display()
        ))
        .into()),
    }
}

/// Options of `cp`.
pub struct CpOptions {
    /// Guest permissions of an uploaded file.
    pub mode: Option<u32>,
    /// Upload in place when the agent cannot rename.
    pub in_place: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// `cp guest:SRC DST` or `cp SRC guest:DST`.
pub fn cp(client: &Client, src: &str, dst: &str, opts: &CpOptions, json: bool) -> Result {
    let (from, to) = (end(src), end(dst));
    let show_bar = !opts.quiet && io::stderr().is_terminal();
    let (transfer, from_desc, to_desc) = match (&from, &to) {
        (End::Guest(g), End::Local(l)) => {
            let l = if l.is_dir() {
                into_dir(l, Some(g))?
            } else {
                l.clone()
            };
            let mut bar = Bar::new(show_bar);
            let t = client.download(g, &l, &mut bar);
            bar.finish();
            (
                t?,
                format!("guest:{}", g.display()),
                l.display().to_string(),
            )
        }
        (End::Guest(g), End::Std) => {
            let mut out = io::stdout().lock();
            let mut bar = Bar::new(show_bar);
            let t = client.download_to(g, &mut out, &mut bar);
            bar.finish();
            let t = t.map_err(broken_pipe_as_io)?;
            out.flush()?;
            (t, format!("guest:{}", g.display()), "-".into())
        }
        (End::Local(_) | End::Std, End::Guest(g)) => {
            let src_path = match &from {
                End::Local(l) => Some(l.as_path()),
                _ => None,
            };
            let is_dir = g.as_os_str().to_string_lossy().ends_with('/')
                || client.file_stat(g).map(|s| s.isdir).unwrap_or(false);
            let g = if is_dir {
                into_dir(g, src_path)?
            } else {
                g.clone()
            };
            let up = UploadOptions {
                perm: opts.mode,
                in_place: opts.in_place,
                chunk: None,
            };
            let mut bar = Bar::new(show_bar);
            let t = match src_path {
                Some(l) => client.upload(l, &g, up, &mut bar),
                None => client.upload_from(&mut io::stdin().lock(), &g, up, &mut bar),
            };
            bar.finish();
            (
                t?,
                src_path.map_or("-".into(), |p| p.display().to_string()),
                format!("guest:{}", g.display()),
            )
        }
        (End::Guest(_), End::Guest(_)) => {
            return Err(Usage("copying within the guest is not supported".into()).into())
        }
        _ => {
            return Err(Usage(
                "one side of cp must be guest:PATH (cp guest:SRC DST or cp SRC guest:DST)".into(),
            )
            .into())
        }
    };
    if json {
        let summary = summary(&transfer, &from_desc, &to_desc);
        if to == End::Std {
            eprintln!("{summary}");
        } else {
            println!("{summary}");
        }
    }
    Ok(())
}

fn summary(t: &Transfer, src: &str, dst: &str) -> serde_json::Value {
    serde_json::json!({
        "src": src,
        "dst": dst,
        "bytes": t.bytes,
        "md5": t.md5,
        "checked": t.checked,
    })
}

/// A progress bar on stderr (bytes, rate, ETA), or nothing when stderr is not a
/// terminal.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(show: bool) -> Self {
        Bar(show.then(|| {
            let bar = ProgressBar::hidden();
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }))
    }

    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, total: Option<u64>) {
        let Some(bar) = &self.0 else { return };
        let style = match total {
            Some(total) => {
                bar.set_length(total);
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
            }
            None => ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}"),
        };
        if let Ok(style) = style {
            bar.set_style(style);
        }
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ends() {
        assert_eq!(end("guest:/etc/x"), End::Guest("/etc/x".into()));
        assert_eq!(end("-"), End::Std);
        assert_eq!(end("./x"), End::Local("./x".into()));
        assert_eq!(
            into_dir(Path::new("/tmp"), Some(Path::new("/etc/hosts"))).unwrap(),
            PathBuf::from("/tmp/hosts")
        );
        into_dir(Path::new("/tmp"), None).unwrap_err();
    }
}
