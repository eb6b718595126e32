//! A hop between Spine's relay and the requesting practice's MHS (SDS gives its URL as
//! the practice's MHS address), meddling with the large-message parts of the transfers it
//! is told about: holding them and delivering them out of order and twice, dropping them,
//! or spoiling one. Everything else passes straight through, and the relay hears the MHS's
//! own answer. A message the interposer keeps is acknowledged to the relay at once (the
//! hop is then the interposer's, as with any MHS), so the relay never resends it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gp2gp::wire::{self, Incoming};

/// What to do with one patient's large-message parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meddle {
    /// Hold every part until all have come, then deliver: each document's fragments last
    /// first (so before the index that lists them), one fragment again after its index,
    /// then the indexes, then the whole documents last first, one of them twice.
    Reorder,
    /// Deliver none.
    DropAll,
    /// Deliver all but the first fragment.
    DropFragment,
    /// Damage the base64 of the first fragment beyond repair, then deliver everything.
    SpoilFragment,
}

/// One delivery to the MHS: the message, and the HTTP status the MHS answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub conversation_id: String,
    pub message_id: String,
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Held {
    id: String,
    body: Bytes,
    content_type: String,
    /// The fragments it lists, when it is a fragment index.
    fragments: Option<Vec<String>>,
}

#[derive(Default)]
struct Conversation {
    meddle: Option<Meddle>,
    /// Every part the extract and the indexes name.
    expected: BTreeSet<String>,
    held: Vec<Held>,
    released: bool,
    /// The first fragment, once one came (the one dropped or spoiled).
    touched: Option<String>,
}

struct Inner {
    target: OnceLock<String>,
    by_patient: HashMap<String, Meddle>,
    http: reqwest::Client,
    conversations: Mutex<HashMap<String, Conversation>>,
    deliveries: Mutex<Vec<Delivery>>,
    dropped: Mutex<Vec<String>>,
}

/// The running interposer.
#[derive(Clone)]
pub struct Interposer {
    pub url: String,
    inner: Arc<Inner>,
}

impl Interposer {
    /// Listens on loopback; `by_patient` says what to do with whose transfer (by the NHS
    /// number the extract names). Messages wait until [`Interposer::pass_to`] is called.
    pub async fn start(by_patient: HashMap<String, Meddle>) -> Interposer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mhs", listener.local_addr().unwrap());
        let inner = Arc::new(Inner {
            target: OnceLock::new(),
            by_patient,
            http: reqwest::Client::new(),
            conversations: Mutex::new(HashMap::new()),
            deliveries: Mutex::new(Vec::new()),
            dropped: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/mhs", axum::routing::post(receive))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(inner.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Interposer { url, inner }
    }

    /// Where messages go on to: the practice's own MHS.
    pub fn pass_to(&self, url: String) {
        self.inner.target.set(url).unwrap();
    }

    /// Every message delivered to the MHS so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.deliveries.lock().unwrap().clone()
    }

    /// The ids of messages dropped.
    pub fn dropped(&self) -> Vec<String> {
        self.inner.dropped.lock().unwrap().clone()
    }

    /// The fragment dropped or spoiled in `conversation`.
    pub fn touched(&self, conversation: &str) -> Option<String> {
        self.inner
            .conversations
            .lock()
            .unwrap()
            .get(conversation)
            .and_then(|c| c.touched.clone())
    }
}

async fn deliver(
    inner: &Inner,
    conversation: &str,
    id: &str,
    content_type: &str,
    body: Bytes,
) -> Response {
    let target = loop {
        if let Some(t) = inner.target.get() {
            break t.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let answer = inner
        .http
        .post(&target)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await;
    let (status, ct, body) = match answer {
        Ok(a) => {
            let status = a.status().as_u16();
            let ct = a
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/xml")
                .to_string();
            (status, ct, a.bytes().await.unwrap_or_default())
        }
        Err(e) => (502, "text/plain".into(), Bytes::from(e.to_string())),
    };
    inner.deliveries.lock().unwrap().push(Delivery {
        conversation_id: conversation.to_string(),
        message_id: id.to_string(),
        status,
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [(header::CONTENT_TYPE, ct)],
        body,
    )
        .into_response()
}

fn is_fragment(parts: &[wire::ReceivedPart]) -> bool {
    parts.iter().any(|p| {
        p.filename
            .as_deref()
            .is_some_and(|f| f.ends_with(".messageattachment"))
    })
}

/// The body with seven base64 characters of `part` replaced by `*`. A reader skips
/// characters outside the alphabet (RFC 2045), so this is seven characters lost: what is
/// left is not a whole number of base64 quanta and cannot be decoded.
fn spoil(body: &Bytes, part: &wire::ReceivedPart) -> Bytes {
    let probe = &part.bytes[..64.min(part.bytes.len())];
    let at = body
        .windows(probe.len())
        .position(|w| w == probe)
        .expect("the fragment's content is in the body");
    let mut spoilt = body.to_vec();
    for b in &mut spoilt[at + 8..at + 15] {
        *b = b'*';
    }
    Bytes::from(spoilt)
}

enum Decision {
    Pass(Bytes),
    Keep,
    Drop,
    Release(Vec<Held>),
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Ok(message) = ebxml::Message::parse(body.clone(), &content_type, &ebxml::Limits::default())
    else {
        return deliver(&inner, "", "", &content_type, body).await;
    };
    let h = &message.envelope().message_header;
    let conversation = h.conversation_id.clone();
    let id = h.message_data.message_id.clone();
    let incoming = wire::read(&message).ok();
    let decision = {
        let mut all = inner.conversations.lock().unwrap();
        let c = all.entry(conversation.clone()).or_default();
        match (&incoming, c.meddle) {
            (
                Some(Incoming::Extract {
                    nhs_number,
                    documents,
                    ..
                }),
                _,
            ) => {
                c.meddle = nhs_number
                    .as_ref()
                    .and_then(|n| inner.by_patient.get(n).copied());
                c.expected
                    .extend(documents.iter().map(|d| d.message_id.as_str().to_string()));
                Decision::Pass(body.clone())
            }
            (Some(Incoming::Copc { parts, .. }), Some(m)) => {
                let first_fragment = is_fragment(parts) && c.touched.is_none();
                if first_fragment {
                    c.touched = Some(id.clone());
                }
                match m {
                    Meddle::DropAll => Decision::Drop,
                    Meddle::DropFragment if first_fragment => Decision::Drop,
                    Meddle::SpoilFragment if first_fragment => {
                        Decision::Pass(spoil(&body, &parts[0]))
                    }
                    Meddle::DropFragment | Meddle::SpoilFragment => Decision::Pass(body.clone()),
                    Meddle::Reorder => hold(c, &id, &body, &content_type, None),
                }
            }
            (Some(Incoming::FragmentIndex { fragments, .. }), Some(m)) => {
                let listed: Vec<String> =
                    fragments.iter().map(|f| f.as_str().to_string()).collect();
                c.expected.extend(listed.iter().cloned());
                match m {
                    Meddle::DropAll => Decision::Drop,
                    Meddle::Reorder => hold(c, &id, &body, &content_type, Some(listed)),
                    _ => Decision::Pass(body.clone()),
                }
            }
            _ => Decision::Pass(body.clone()),
        }
    };
    match decision {
        Decision::Pass(body) => deliver(&inner, &conversation, &id, &content_type, body).await,
        Decision::Drop => {
            inner.dropped.lock().unwrap().push(id);
            acknowledge(&message)
        }
        Decision::Keep => acknowledge(&message),
        Decision::Release(held) => {
            let inner2 = inner.clone();
            tokio::spawn(async move { release(&inner2, &conversation, held).await });
            acknowledge(&message)
        }
    }
}

fn acknowledge(message: &ebxml::Message) -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    mhs::hop::acknowledge(message.envelope(), &mhs::hop::reply_ids(now))
}

fn hold(
    c: &mut Conversation,
    id: &str,
    body: &Bytes,
    content_type: &str,
    fragments: Option<Vec<String>>,
) -> Decision {
    if !c.held.iter().any(|h| h.id.eq_ignore_ascii_case(id)) {
        c.held.push(Held {
            id: id.to_string(),
            body: body.clone(),
            content_type: content_type.to_string(),
            fragments,
        });
    }
    let all_in = !c.released
        && c.expected
            .iter()
            .all(|e| c.held.iter().any(|h| h.id.eq_ignore_ascii_case(e)));
    if all_in {
        c.released = true;
        Decision::Release(std::mem::take(&mut c.held))
    } else {
        Decision::Keep
    }
}

/// Delivers what was held in the [`Meddle::Reorder`] order.
async fn release(inner: &Inner, conversation: &str, held: Vec<Held>) {
    let find = |id: &str| held.iter().find(|h| h.id.eq_ignore_ascii_case(id)).unwrap();
    let indexes: Vec<&Held> = held.iter().filter(|h| h.fragments.is_some()).collect();
    let listed: Vec<String> = indexes
        .iter()
        .flat_map(|i| i.fragments.clone().unwrap_or_default())
        .collect();
    let mut order: Vec<&Held> = Vec::new();
    for index in &indexes {
        let fragments = index.fragments.as_ref().unwrap();
        order.extend(fragments.iter().rev().map(|f| find(f)));
        order.push(index);
        order.push(find(&fragments[0]));
    }
    let documents: Vec<&Held> = held
        .iter()
        .filter(|h| h.fragments.is_none() && !listed.iter().any(|f| f.eq_ignore_ascii_case(&h.id)))
        .rev()
        .collect();
    order.extend(documents.iter().copied());
    if let Some(d) = documents.first() {
        order.push(d);
    }
    for h in order {
        deliver(inner, conversation, &h.id, &h.content_type, h.body.clone()).await;
    }
}
