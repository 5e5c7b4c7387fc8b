//! The atomic upload path (temporary name, then `file-rename`) against a scripted
//! agent, since the agent's command set has no rename yet: the data must go to a
//! hidden name beside the destination, be checked, and only then be renamed; a broken
//! transfer must never open the destination itself.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use phoenix_client::{Client, ClientError, UploadOptions};
use phoenix_testkit::{b64, md5_of, unb64};
use serde_json::{json, Value};

/// What the scripted agent saw and holds.
#[derive(Default)]
struct Guest {
    files: HashMap<String, Vec<u8>>,
    opened: Vec<String>,
    handles: HashMap<u64, String>,
    writes: usize,
    renames: Vec<(String, String)>,
}

/// Serves one client: a phoenix-rs 0.8 agent that also has `file-rename`; the
/// `fail_write`-th `file-write` (1-based) fails with ENOSPC.
fn scripted_agent(dir: &Path, guest: Arc<Mutex<Guest>>, fail_write: Option<usize>) -> String {
    let sock = dir.join("fake.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return;
            }
            let text: Vec<u8> = line.iter().copied().filter(|&b| b != 0xFF).collect();
            let Ok(req) = serde_json::from_slice::<Value>(&text) else {
                continue;
            };
            let a = &req["arguments"];
            let mut g = guest.lock().unwrap();
            let result: Result<Value, (&str, i32)> = match req["execute"].as_str().unwrap() {
                "ping" => Ok(json!("0.8.0")),
                "get-commands" => Ok(json!([
                    "ping",
                    "get-commands",
                    "file-open",
                    "file-write",
                    "get-file-md5sum",
                    "file-rename",
                    "file-close"
                ])),
                "file-open" => {
                    let path = a["path"].as_str().unwrap().to_string();
                    assert_eq!(a["mode"], "w");
                    g.opened.push(path.clone());
                    g.files.insert(path.clone(), Vec::new());
                    let h = g.handles.len() as u64 + 1;
                    g.handles.insert(h, path);
                    Ok(json!(h))
                }
                "file-write" => {
                    g.writes += 1;
                    if Some(g.writes) == fail_write {
                        Err(("write: No space left on device", 28))
                    } else {
                        let path = g.handles[&a["handle_id"].as_u64().unwrap()].clone();
                        let data = unb64(&a["bufb64"]);
                        g.files.get_mut(&path).unwrap().extend_from_slice(&data);
                        Ok(json!(true))
                    }
                }
                "file-close" => Ok(json!(true)),
                "get-file-md5sum" => {
                    let data = &g.files[a["path"].as_str().unwrap()];
                    Ok(json!(md5_of(data)))
                }
                "file-rename" => {
                    let (src, dst) = (a["src"].as_str().unwrap(), a["dst"].as_str().unwrap());
                    let data = g.files.remove(src).unwrap();
                    g.files.insert(dst.to_string(), data);
                    g.renames.push((src.to_string(), dst.to_string()));
                    Ok(json!(true))
                }
                other => panic!("unexpected command {other}"),
            };
            let tag = req["tag"].clone();
            let reply = match result {
                Ok(v) => json!({"return": v, "tag": tag}),
                Err((msg, code)) => json!({"error": {
                    "bufb64": b64(msg.as_bytes()),
                    "code": code}, "tag": tag}),
            };
            drop(g);
            out.write_all(format!("{reply}\n").as_bytes()).unwrap();
        }
    });
    sock.to_str().unwrap().to_string()
}

#[test]
fn an_upload_goes_to_a_temporary_name_and_is_renamed_when_checked() {
    let dir = tempfile::tempdir().unwrap();
    let guest = Arc::new(Mutex::new(Guest::default()));
    let sock = scripted_agent(dir.path(), Arc::clone(&guest), None);
    let client = Client::connect(&sock).unwrap();
    let data: Vec<u8> = (0..(9 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let t = client
        .upload_from(
            &mut &data[..],
            Path::new("/srv/app.bin"),
            UploadOptions::default(),
            &mut (),
        )
        .unwrap();
    assert_eq!(t.bytes, data.len() as u64);
    let g = guest.lock().unwrap();
    assert_eq!(g.opened.len(), 1);
    let temp = &g.opened[0];
    assert!(
        temp.starts_with("/srv/.app.bin.phoenix-") && temp.ends_with(".part"),
        "{temp}"
    );
    assert_eq!(g.renames, [(temp.clone(), "/srv/app.bin".to_string())]);
    assert!(g.files["/srv/app.bin"] == data);
    assert_eq!(g.files.len(), 1, "nothing left under the temporary name");
    assert_eq!(
        g.writes, 4,
        "3 chunks of 4 MiB at most, then the empty eof write"
    );
}

#[test]
fn a_broken_upload_never_touches_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let guest = Arc::new(Mutex::new(Guest::default()));
    let sock = scripted_agent(dir.path(), Arc::clone(&guest), Some(2));
    let client = Client::connect(&sock).unwrap();
    let data = vec![1u8; 9 << 20];
    let e = client
        .upload_from(
            &mut &data[..],
            Path::new("/srv/app.bin"),
            UploadOptions::default(),
            &mut (),
        )
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Agent(ref a) if a.code == 28),
        "{e}"
    );
    assert_eq!(e.to_string(), "No space left on device (ENOSPC, 28): write");
    let g = guest.lock().unwrap();
    assert!(
        !g.opened.iter().any(|p| p == "/srv/app.bin"),
        "{:?}",
        g.opened
    );
    assert!(g.renames.is_empty());
    assert!(!g.files.contains_key("/srv/app.bin"));
}
