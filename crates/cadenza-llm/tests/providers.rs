//! The providers against the test kit's fake model server, in both wire formats and both
//! streaming modes. Each test runs its four cases concurrently (one fake server each), so tests
//! that wait out a `Retry-After` wait once.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cadenza_llm::{
    ChatModel, ChatRequest, ChatResponse, LlmError, LlmErrorKind, Message, ProviderKind, ProviderSettings, RetryPolicy,
    StopReason, ToolCall, ToolChoice, ToolDef, Usage, provider,
};
use cadenza_testkit::fake_model::{FakeModel, RecordedRequest, Reply, WireFormat, tool_rounds};
use futures::future::join_all;
use serde_json::{Value, json};

const KEY: &str = "sk-test-0123456789-very-secret";

#[derive(Debug, Clone, Copy)]
struct Case {
    kind: ProviderKind,
    stream: bool,
}

const CASES: [Case; 4] = [
    Case { kind: ProviderKind::OpenAi, stream: false },
    Case { kind: ProviderKind::OpenAi, stream: true },
    Case { kind: ProviderKind::Anthropic, stream: false },
    Case { kind: ProviderKind::Anthropic, stream: true },
];

/// Fast retries (so tests do not wait on backoff) with a cap that still honours `Retry-After: 1`.
fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy { max_attempts, base_delay: Duration::from_millis(1), max_delay: Duration::from_secs(2) }
}

fn settings(fake: &FakeModel, case: Case) -> ProviderSettings {
    let base = match case.kind {
        ProviderKind::OpenAi => fake.openai_base_url(),
        ProviderKind::Anthropic => fake.anthropic_base_url(),
    };
    let mut s = ProviderSettings::new(case.kind, base, Some(KEY.to_owned()));
    s.stream = case.stream;
    s.request_timeout = Duration::from_secs(10);
    s.retry = policy(3);
    s
}

/// One HTTP client for every test, as in the server. Building one is slow (it loads the
/// platform's certificates) and blocks the thread: built per case, it would stall the other
/// cases' fake servers and timers on the test's single-threaded runtime.
static HTTP: LazyLock<reqwest::Client> = LazyLock::new(reqwest::Client::new);

fn client(s: ProviderSettings) -> Arc<dyn ChatModel> {
    provider(s, HTTP.clone())
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        model: "test-model".into(),
        system: "You are a test.".into(),
        messages: vec![Message::user(text)],
        request_id: Some("step-42".into()),
        ..ChatRequest::default()
    }
}

fn weather_tool() -> ToolDef {
    ToolDef {
        name: "get_weather".into(),
        description: "The weather in a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    }
}

/// Runs `f` for every case at once; each gets its own fake server.
async fn each<F, Fut>(f: F)
where
    F: Fn(Case, FakeModel) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut runs = Vec::new();
    for case in CASES {
        runs.push(f(case, FakeModel::start().await));
    }
    join_all(runs).await;
}

async fn chat(fake: &FakeModel, case: Case, req: &ChatRequest) -> Result<ChatResponse, LlmError> {
    client(settings(fake, case)).chat(req).await
}

fn args(call: &ToolCall) -> Value {
    serde_json::from_str(&call.arguments).unwrap_or_else(|e| panic!("arguments {:?} not JSON: {e}", call.arguments))
}

fn format_of(case: Case) -> WireFormat {
    match case.kind {
        ProviderKind::OpenAi => WireFormat::OpenAi,
        ProviderKind::Anthropic => WireFormat::Anthropic,
    }
}

#[tokio::test]
async fn text_answer_with_usage() {
    each(|case, fake| async move {
        fake.push(Reply::text("hello there, world").with_usage(120, 15).with_cached(100));
        let r = chat(&fake, case, &ask("hi")).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!(r.content, "hello there, world", "{case:?}");
        assert_eq!(r.usage, Usage { input_tokens: 120, output_tokens: 15, cached_input_tokens: 100 }, "{case:?}");
        assert_eq!((r.stop, r.attempts, r.tool_calls.len()), (StopReason::EndTurn, 1, 0), "{case:?}");

        let sent = &fake.requests()[0];
        assert_eq!((sent.format, sent.stream), (format_of(case), case.stream), "{case:?}");
        assert_eq!(sent.body["model"], "test-model");
        assert_eq!(sent.system(), "You are a test.");
        assert_eq!(sent.last_user_text(), "hi");
    })
    .await;
}

#[tokio::test]
async fn one_tool_call() {
    each(|case, fake| async move {
        fake.push(Reply::tool_call("get_weather", json!({"city": "Paris"})));
        let mut req = ask("weather in Paris?");
        req.tools = vec![weather_tool()];
        req.tool_choice = ToolChoice::Required;
        let r = chat(&fake, case, &req).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!(r.stop, StopReason::ToolUse, "{case:?}");
        assert_eq!(r.tool_calls.len(), 1, "{case:?}");
        assert_eq!(r.tool_calls[0].name, "get_weather");
        assert!(r.tool_calls[0].id.starts_with("call_"), "{:?}", r.tool_calls[0]);
        assert_eq!(args(&r.tool_calls[0]), json!({"city": "Paris"}), "{case:?}");

        let sent = &fake.requests()[0];
        assert_eq!(sent.tool_names(), vec!["get_weather"]);
        match case.kind {
            ProviderKind::OpenAi => {
                assert_eq!(sent.body["tools"][0]["type"], "function");
                assert_eq!(sent.body["tools"][0]["function"]["parameters"], weather_tool().parameters);
                assert_eq!(sent.body["tool_choice"], "required");
            }
            ProviderKind::Anthropic => {
                assert_eq!(sent.body["tools"][0]["input_schema"], weather_tool().parameters);
                assert_eq!(sent.body["tool_choice"], json!({"type": "any"}));
            }
        }
    })
    .await;
}

#[tokio::test]
async fn parallel_tool_calls() {
    each(|case, fake| async move {
        fake.push(
            Reply::tool_calls(vec![
                ("get_weather", json!({"city": "Paris"})),
                ("get_weather", json!({"city": "Oslo"})),
            ])
            .with_text("Looking both up."),
        );
        let mut req = ask("Paris and Oslo?");
        req.tools = vec![weather_tool()];
        let r = chat(&fake, case, &req).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!(r.content, "Looking both up.", "{case:?}");
        let cities: Vec<Value> = r.tool_calls.iter().map(|c| args(c)["city"].clone()).collect();
        assert_eq!(cities, vec![json!("Paris"), json!("Oslo")], "{case:?}");
        assert_ne!(r.tool_calls[0].id, r.tool_calls[1].id, "{case:?}");
        assert_eq!(r.stop, StopReason::ToolUse);
    })
    .await;
}

#[tokio::test]
async fn tool_results_are_sent_back_in_the_right_shape() {
    each(|case, fake| async move {
        fake.push(Reply::text("Paris 21°, Oslo 9°."));
        let calls = vec![
            ToolCall { id: "call_a".into(), name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
            ToolCall { id: "call_b".into(), name: "get_weather".into(), arguments: r#"{"city":"Oslo"}"#.into() },
        ];
        let mut req = ask("Paris and Oslo?");
        req.tools = vec![weather_tool()];
        req.messages.push(Message::assistant("", calls));
        req.messages.push(Message::tool("call_a", "get_weather", "21°", false));
        req.messages.push(Message::tool("call_b", "get_weather", "no station", true));
        let r = chat(&fake, case, &req).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!(r.content, "Paris 21°, Oslo 9°.");

        let sent: RecordedRequest = fake.requests().remove(0);
        let results = vec![("call_a".to_owned(), "21°".to_owned()), ("call_b".to_owned(), "no station".to_owned())];
        assert_eq!(sent.tool_results(), results, "{case:?}");
        let m = sent.messages();
        let roles: Vec<&str> = m.iter().map(|m| m["role"].as_str().unwrap_or_default()).collect();
        match case.kind {
            ProviderKind::OpenAi => {
                assert_eq!(roles, ["system", "user", "assistant", "tool", "tool"]);
                assert_eq!(m[2]["content"], Value::Null);
                assert_eq!(m[2]["tool_calls"][1]["id"], "call_b");
                assert_eq!(m[2]["tool_calls"][1]["type"], "function");
                assert_eq!(m[2]["tool_calls"][1]["function"]["arguments"], r#"{"city":"Oslo"}"#);
                assert_eq!(m[3]["tool_call_id"], "call_a");
                assert_eq!(m[4]["tool_call_id"], "call_b");
            }
            ProviderKind::Anthropic => {
                // Both results in one user message, after the assistant's two tool_use blocks.
                assert_eq!(roles, ["user", "assistant", "user"]);
                assert_eq!(sent.body["system"], "You are a test.");
                assert_eq!(sent.body["max_tokens"], 4096);
                assert_eq!(m[1]["content"][0]["type"], "tool_use");
                assert_eq!(m[1]["content"][1]["input"], json!({"city": "Oslo"}));
                let blocks = m[2]["content"].as_array().cloned().unwrap_or_default();
                assert_eq!(blocks.len(), 2);
                assert_eq!(blocks[0]["type"], "tool_result");
                assert_eq!(blocks[0]["tool_use_id"], "call_a");
                assert_eq!(blocks[0]["is_error"], false);
                assert_eq!(blocks[1]["tool_use_id"], "call_b");
                assert_eq!(blocks[1]["is_error"], true);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn server_error_then_success_is_one_retry() {
    each(|case, fake| async move {
        fake.script("RETRY-ONCE", vec![Reply::status(500), Reply::text("hi")]);
        let r = chat(&fake, case, &ask("RETRY-ONCE please")).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!((r.content.as_str(), r.attempts), ("hi", 2), "{case:?}");
        assert_eq!(fake.request_count(), 2);
        // Both attempts carry the same request id, so they can be correlated.
        let ids: Vec<_> = fake.requests().iter().map(|r| r.header("x-request-id")).collect();
        assert_eq!(ids, vec![Some("step-42".to_owned()); 2]);
    })
    .await;
}

#[tokio::test]
async fn overloaded_is_retried_too() {
    each(|case, fake| async move {
        fake.push(Reply::status(529));
        fake.push(Reply::status(503));
        let r = chat(&fake, case, &ask("hi")).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!((r.content.as_str(), r.attempts), ("ok", 3), "{case:?}");
    })
    .await;
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let port = closed_port().await;
    let mut s = ProviderSettings::new(ProviderKind::OpenAi, format!("http://127.0.0.1:{port}/v1"), None);
    s.retry = policy(3);
    let e = client(s).chat(&ask("hi")).await.expect_err("nothing listens");
    assert_eq!((e.kind(), e.attempts(), e.status()), (LlmErrorKind::Connect, 3, None));
    assert!(e.to_string().starts_with("could not reach the model provider after 3 attempts: "), "{e}");
}

/// A whole tool loop, as the runtime will drive it: call, answer the results, until text.
#[tokio::test]
async fn a_tool_loop_against_the_tool_rounds_responder() {
    each(|case, fake| async move {
        fake.set_responder(tool_rounds(2, None));
        let model = client(settings(&fake, case));
        let mut req = ask("loop");
        req.tools = vec![weather_tool()];
        let mut turns = 0;
        let answer = loop {
            turns += 1;
            let r = model.chat(&req).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
            if r.tool_calls.is_empty() {
                break r.content;
            }
            let results: Vec<Message> = r
                .tool_calls
                .iter()
                .map(|c| Message::tool(&c.id, &c.name, format!("result of {}", c.arguments), false))
                .collect();
            req.messages.push(Message::assistant(r.content, r.tool_calls));
            req.messages.extend(results);
        };
        assert_eq!((answer.as_str(), turns), ("done", 3), "{case:?}");
        let last = fake.requests().pop().map(|r| r.tool_results()).unwrap_or_default();
        let contents: Vec<&str> = last.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(contents, [r#"result of {"round":1}"#, r#"result of {"round":2}"#], "{case:?}");
    })
    .await;
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    each(|case, fake| async move {
        fake.push(Reply::rate_limited(1));
        fake.push(Reply::text("after the wait"));
        let r = chat(&fake, case, &ask("hi")).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!((r.content.as_str(), r.attempts), ("after the wait", 2), "{case:?}");
        assert_eq!(fake.request_count(), 2);
    })
    .await;
}

#[tokio::test]
async fn rate_limit_longer_than_the_cap_fails_at_once() {
    each(|case, fake| async move {
        fake.push(Reply::rate_limited(60));
        let e = chat(&fake, case, &ask("hi")).await.expect_err("60 s is beyond the 2 s cap");
        assert_eq!((e.kind(), e.status(), e.attempts()), (LlmErrorKind::RateLimited, Some(429), 1), "{case:?}");
        assert!(e.retryable());
        assert!(e.to_string().contains("rate limit reached (fake)"), "{e}");
        assert_eq!(fake.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn retries_exhausted_is_a_server_error() {
    each(|case, fake| async move {
        fake.set_fallback(Reply::status(503));
        let e = chat(&fake, case, &ask("hi")).await.expect_err("always 503");
        assert_eq!((e.kind(), e.status(), e.attempts()), (LlmErrorKind::ServerError, Some(503), 3), "{case:?}");
        assert_eq!(e.to_string(), "the model provider answered 503 after 3 attempts: fake error: status 503");
        assert_eq!(fake.request_count(), 3);
    })
    .await;
}

#[tokio::test]
async fn bad_request_is_not_retried() {
    each(|case, fake| async move {
        fake.push(Reply::status(400));
        let e = chat(&fake, case, &ask("hi")).await.expect_err("400");
        assert_eq!((e.kind(), e.status(), e.attempts()), (LlmErrorKind::Refused, Some(400), 1), "{case:?}");
        assert!(!e.retryable());
        assert_eq!(fake.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn cut_stream_is_retried() {
    each(|case, fake| async move {
        fake.push(Reply::cut_stream());
        fake.push(Reply::text("the whole answer"));
        let r = chat(&fake, case, &ask("hi")).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        assert_eq!((r.content.as_str(), r.attempts), ("the whole answer", 2), "{case:?}");

        fake.set_fallback(Reply::cut_stream().with_text("never finished"));
        let e = chat(&fake, case, &ask("hi")).await.expect_err("always cut");
        assert_eq!((e.kind(), e.attempts()), (LlmErrorKind::CutStream, 3), "{case:?}: {e}");
        assert_eq!(fake.request_count(), 5);
    })
    .await;
}

/// A complete answer that is not valid JSON is a `BadResponse` and is not retried: a server that
/// answers in a shape we cannot read does so every time, and each attempt may be billed.
#[tokio::test]
async fn malformed_answer_is_a_bad_response_without_retry() {
    each(|case, fake| async move {
        fake.push(Reply::malformed());
        let e = chat(&fake, case, &ask("hi")).await.expect_err("malformed");
        assert_eq!((e.kind(), e.attempts()), (LlmErrorKind::BadResponse, 1), "{case:?}: {e}");
        assert!(!e.retryable());
        assert_eq!(fake.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    each(|case, fake| async move {
        // Streaming, the headers come at once and the first chunk is late: the idle timeout.
        fake.set_fallback(Reply::text("too late").delay(Duration::from_secs(30)));
        let mut s = settings(&fake, case);
        s.request_timeout = Duration::from_millis(500);
        s.retry = policy(2);
        let e = client(s).chat(&ask("hi")).await.expect_err("times out");
        assert_eq!((e.kind(), e.attempts()), (LlmErrorKind::Timeout, 2), "{case:?}: {e}");
        assert_eq!(fake.request_count(), 2, "{case:?}");
    })
    .await;
}

#[tokio::test]
async fn the_key_goes_in_the_auth_header() {
    each(|case, fake| async move {
        chat(&fake, case, &ask("hi")).await.unwrap_or_else(|e| panic!("{case:?}: {e}"));
        let sent = &fake.requests()[0];
        match case.kind {
            ProviderKind::OpenAi => {
                assert_eq!(sent.header("authorization"), Some(format!("Bearer {KEY}")));
                assert_eq!(sent.header("x-api-key"), None);
                if case.stream {
                    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
                }
            }
            ProviderKind::Anthropic => {
                assert_eq!(sent.header("x-api-key"), Some(KEY.to_owned()));
                assert_eq!(sent.header("anthropic-version"), Some("2023-06-01".to_owned()));
                assert_eq!(sent.header("authorization"), None);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn no_key_sends_no_auth_header() {
    let fake = FakeModel::start().await;
    let mut s = settings(&fake, CASES[0]);
    s.api_key = None;
    client(s).chat(&ask("hi")).await.expect("a keyless local server");
    assert_eq!(fake.requests()[0].header("authorization"), None);
}

/// An address nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn the_key_appears_in_no_error_and_no_debug_output() {
    let mut errors: Vec<LlmError> = Vec::new();
    for case in CASES {
        let fake = FakeModel::start().await;
        let faults = [
            Reply::rate_limited(60),
            Reply::status(500),
            Reply::status(401),
            Reply::cut_stream(),
            Reply::malformed(),
            Reply::text("late").delay(Duration::from_secs(30)),
        ];
        for fault in faults {
            let mut s = settings(&fake, case);
            if fault == Reply::text("late").delay(Duration::from_secs(30)) {
                s.request_timeout = Duration::from_millis(300);
            }
            fake.set_fallback(fault);
            s.retry = policy(1);
            errors.push(client(s).chat(&ask("hi")).await.expect_err("a fault"));
        }
        // The key inside the URL (as some proxies want it): the connection error names the URL,
        // so this checks the redaction itself, not just that the key was never in the message.
        let mut s = settings(&fake, case);
        s.base_url = format!("http://127.0.0.1:{}/{KEY}", closed_port().await);
        s.retry = policy(1);
        errors.push(client(s.clone()).chat(&ask("hi")).await.expect_err("nothing listens"));
        let settings_debug = format!("{s:?}");
        assert!(!settings_debug.contains(KEY) && settings_debug.contains("[redacted]"), "{settings_debug}");
    }
    let kinds: std::collections::HashSet<_> = errors.iter().map(LlmError::kind).collect();
    for kind in [
        LlmErrorKind::RateLimited,
        LlmErrorKind::ServerError,
        LlmErrorKind::Connect,
        LlmErrorKind::Timeout,
        LlmErrorKind::CutStream,
        LlmErrorKind::BadResponse,
        LlmErrorKind::Refused,
    ] {
        assert!(kinds.contains(&kind), "no {kind:?} among {kinds:?}");
    }
    for e in &errors {
        let (display, debug) = (e.to_string(), format!("{e:?}"));
        assert!(!display.contains(KEY) && !debug.contains(KEY), "{display} / {debug}");
        assert!(!display.contains("0123456789"), "a part of the key in {display}");
    }
    let connect = errors.iter().find(|e| e.kind() == LlmErrorKind::Connect).map(ToString::to_string);
    assert!(connect.is_some_and(|m| m.contains("[redacted]")), "the URL's key was redacted");
}

#[tokio::test]
async fn scripts_answer_by_marker_even_concurrently() {
    let fake = FakeModel::start().await;
    fake.script("OBJ-A", vec![Reply::text("a1"), Reply::text("a2")]);
    fake.script("OBJ-B", vec![Reply::text("b1")]);
    fake.push(Reply::text("queued"));
    let model = client(settings(&fake, CASES[1]));
    let mut a = ask("task");
    a.system = "objective OBJ-A".into();
    let b = ask("work on OBJ-B");
    let (ra, rb) = futures::join!(model.chat(&a), model.chat(&b));
    assert_eq!(ra.map(|r| r.content).ok().as_deref(), Some("a1"));
    assert_eq!(rb.map(|r| r.content).ok().as_deref(), Some("b1"));
    let next = |r: &ChatRequest| {
        let model = model.clone();
        let r = r.clone();
        async move { model.chat(&r).await.map(|r| r.content).unwrap_or_else(|e| e.to_string()) }
    };
    assert_eq!(next(&a).await, "a2");
    // An exhausted script answers with the fallback, not with another request's queued reply.
    assert_eq!(next(&b).await, "ok");
    assert_eq!(next(&ask("unscripted")).await, "queued");
    assert_eq!(next(&ask("unscripted")).await, "ok");
    assert_eq!(fake.request_count(), 6);
}
