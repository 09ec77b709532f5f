//! Prints what ambient context the guest was given, as one JSON document on
//! stdout, and exits 0: `{"args": [...], "env": {"NAME": "value"}, "cwd": ...}`.
//! Used to check that only the arguments and environment the runner means
//! to pass reach the guest (no host environment leaks in).

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env: serde_json::Map<String, serde_json::Value> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned().into(),
            )
        })
        .collect();
    let cwd = std::env::current_dir()
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    println!(
        "{}",
        serde_json::json!({ "args": args, "env": env, "cwd": cwd })
    );
}
