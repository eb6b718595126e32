//! `lloyd transfer`: register a patient at a practice on a running server (`lloyd serve`
//! or `lloyd demo`) and follow the GP2GP transfer that starts, message by message, until
//! it ends. Exit 0 when the record was integrated, 1 when the transfer failed or was
//! rejected (or did not end in time), 2 for usage errors.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Register a patient at a practice and follow their GP2GP transfer.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The patient's NHS number.
    #[arg(long)]
    nhs_number: String,
    /// The ODS code of the practice the patient joins.
    #[arg(long)]
    to: String,
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Give up following after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// Runs the command.
pub fn run(args: Args) -> ExitCode {
    if let Err(e) = nhsid::NhsNumber::parse(args.nhs_number.trim()) {
        eprintln!("lloyd transfer: --nhs-number {}: {e}", args.nhs_number);
        return ExitCode::from(2);
    }
    if let Err(e) = nhsid::OdsCode::parse(args.to.trim()) {
        eprintln!("lloyd transfer: --to {}: {e}", args.to);
        return ExitCode::from(2);
    }
    let runtime = match super::runtime("transfer") {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(follow(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("lloyd transfer: {e}");
            ExitCode::from(1)
        }
    }
}

async fn follow(args: Args) -> Result<bool, String> {
    let base = args.server.trim_end_matches('/');
    let to = args.to.trim().to_ascii_uppercase();
    let http = reqwest::Client::new();
    let url = format!("{base}/practices/{to}/registrations");
    let answer = http
        .post(&url)
        .json(&json!({"nhsNumber": args.nhs_number.trim()}))
        .send()
        .await
        .map_err(|e| {
            format!("cannot reach {url}: {e} (is `lloyd serve` or `lloyd demo` running?)")
        })?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!(
            "the registration was refused ({status}): {}",
            body["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let Some(conversation) = body["conversationId"].as_str() else {
        println!(
            "registered; {}",
            body["note"].as_str().unwrap_or("no transfer needed")
        );
        return Ok(true);
    };
    println!(
        "registered {} at {to}; GP2GP transfer {conversation} from {}",
        args.nhs_number.trim(),
        body["from"].as_str().unwrap_or("?")
    );
    let status_url = format!("{base}/practices/{to}/ehr-status/{conversation}");
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut seen = BTreeSet::new();
    loop {
        let status: Value = http
            .get(&status_url)
            .send()
            .await
            .map_err(|e| format!("{status_url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{status_url}: {e}"))?;
        for m in status["messages"].as_array().into_iter().flatten() {
            let key = format!("{}{}", m["messageId"], m["direction"]);
            if seen.insert(key) {
                println!(
                    "  {} {:<18} {} {}{}",
                    if m["direction"] == "out" {
                        "→"
                    } else {
                        "←"
                    },
                    m["interactionId"].as_str().unwrap_or_default(),
                    m["ackType"].as_str().unwrap_or(""),
                    m["note"].as_str().unwrap_or(""),
                    m["meaning"]
                        .as_str()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                );
            }
        }
        if status["finished"].as_bool() == Some(true) {
            let phase = status["phase"].as_str().unwrap_or_default();
            println!(
                "{phase}: {}",
                status["outcome"].as_str().unwrap_or_default()
            );
            return Ok(phase == "integrated");
        }
        if Instant::now() > deadline {
            println!(
                "still {} after {} s; follow it at {status_url}",
                status["phase"].as_str().unwrap_or("under way"),
                args.timeout
            );
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
