//! Error texts over a real socket: panicking hub methods, and every invocation error with
//! detailed errors off (and, where it matters, on), as ASP.NET Core words them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, error_of, serve, value_of};
use futures_util::stream;
use serde_json::json;
use signalr_core::{CompletionResult, HubMessage};
use signalr_server::{Hub, HubError, HubOptions, UploadStream};

fn explode() -> i32 {
    panic!("kaboom")
}

fn hub(detailed: bool) -> Hub {
    Hub::builder("Errors")
        .options(HubOptions::default().enable_detailed_errors(detailed))
        .method("Add", |a: i32, b: i32| async move { a + b })
        .method("Boom", || async { explode() })
        .method("Fail", || async { Err::<(), _>(HubError::new("nope")) })
        .method("Hidden", || async {
            Err::<(), _>(std::io::Error::other("the database is down"))
        })
        .method("Upload", |items: UploadStream<i32>| async move {
            drop(items);
        })
        .stream("Count", |n: u32| async move { stream::iter(0..n) })
        .stream("Forever", || async {
            stream::unfold(0u64, |n| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((n, n + 1))
            })
        })
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_method_reports_a_generic_error_and_the_connection_survives() {
    let server = serve(hub(false)).await;
    let mut caller = Client::connect(server.addr).await;
    let mut bystander = Client::connect(server.addr).await;

    let error = caller.invoke_error("Boom", json!([])).await;
    assert_eq!(
        error,
        "An unexpected error occurred invoking 'Boom' on the server."
    );
    // The same connection keeps working, and so do the others.
    assert_eq!(caller.invoke_value::<i32>("Add", json!([2, 3])).await, 5);
    assert_eq!(bystander.invoke_value::<i32>("Add", json!([4, 5])).await, 9);
    // Twice in a row, to be sure no state was poisoned.
    let error = caller.invoke_error("Boom", json!([])).await;
    assert_eq!(
        error,
        "An unexpected error occurred invoking 'Boom' on the server."
    );
    assert_eq!(caller.invoke_value::<i32>("Add", json!([1, 1])).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_method_with_detailed_errors_shows_the_panic_message() {
    let server = serve(hub(true)).await;
    let mut caller = Client::connect(server.addr).await;
    let error = caller.invoke_error("Boom", json!([])).await;
    assert!(
        error.starts_with("An unexpected error occurred invoking 'Boom' on the server. "),
        "{error}"
    );
    assert!(error.ends_with("kaboom"), "{error}");
    assert_eq!(caller.invoke_value::<i32>("Add", json!([2, 3])).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_error_texts_without_detailed_errors() {
    let server = serve(hub(false)).await;
    let mut c = Client::connect(server.addr).await;

    assert_eq!(
        c.invoke_error("Nope", json!([])).await,
        "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."
    );
    assert_eq!(
        c.invoke_error("Add", json!([1])).await,
        "Failed to invoke 'Add' due to an error on the server."
    );
    assert_eq!(
        c.invoke_error("Add", json!([1, 2, 3])).await,
        "Failed to invoke 'Add' due to an error on the server."
    );
    assert_eq!(
        c.invoke_error("Add", json!(["one", 2])).await,
        "Failed to invoke 'Add' due to an error on the server."
    );
    assert_eq!(
        c.invoke_error("Fail", json!([])).await,
        "An unexpected error occurred invoking 'Fail' on the server. HubException: nope"
    );
    assert_eq!(
        c.invoke_error("Hidden", json!([])).await,
        "An unexpected error occurred invoking 'Hidden' on the server."
    );
    // Names match case-insensitively; the text uses the name the client sent.
    assert_eq!(c.invoke_value::<i32>("add", json!([1, 2])).await, 3);

    // An invocation of a streaming method, and a stream invocation of a plain one.
    assert_eq!(
        c.invoke_error("Count", json!([3])).await,
        "The client attempted to invoke the streaming 'Count' method with a non-streaming invocation."
    );
    c.send_stream_invocation("s-add", "Add", json!([1, 2]))
        .await;
    assert_eq!(
        error_of(&c.completion("s-add").await),
        "The client attempted to invoke the non-streaming 'Add' method with a streaming invocation."
    );

    // Upload stream count mismatches.
    assert_eq!(
        c.invoke_error("Upload", json!([])).await,
        "An unexpected error occurred invoking 'Upload' on the server. HubException: Client sent 0 stream(s), Hub method expects 1."
    );
    c.send_invocation_with_streams("up2", "Add", json!([1, 2]), &["x"])
        .await;
    assert_eq!(
        error_of(&c.completion("up2").await),
        "An unexpected error occurred invoking 'Add' on the server. HubException: Client sent 1 stream(s), Hub method expects 0."
    );

    // The connection still works after all of that.
    assert_eq!(c.invoke_value::<i32>("Add", json!([20, 22])).await, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_error_texts_with_detailed_errors() {
    let server = serve(hub(true)).await;
    let mut c = Client::connect(server.addr).await;
    assert_eq!(
        c.invoke_error("Add", json!([1])).await,
        "Failed to invoke 'Add' due to an error on the server. InvalidDataException: Invocation provides 1 argument(s) but target expects 2."
    );
    let error = c.invoke_error("Add", json!(["one", 2])).await;
    assert!(
        error.starts_with("Failed to invoke 'Add' due to an error on the server. InvalidDataException: Error binding arguments."),
        "{error}"
    );
    let error = c.invoke_error("Hidden", json!([])).await;
    assert!(
        error.starts_with("An unexpected error occurred invoking 'Hidden' on the server. "),
        "{error}"
    );
    assert!(error.ends_with(": the database is down"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_stream_invocation_id_is_refused() {
    let server = serve(hub(false)).await;
    let mut c = Client::connect(server.addr).await;
    c.send_stream_invocation("1", "Forever", json!([])).await;
    // The first stream is running once its first item arrives.
    let first = c.recv().await;
    assert!(
        matches!(&first, HubMessage::StreamItem(item) if item.invocation_id == "1"),
        "{first:?}"
    );
    c.send_stream_invocation("1", "Count", json!([2])).await;
    // The refusal is a completion for id 1 with an error; the running stream's items
    // may come before it.
    let completion = c
        .wait_for(
            "the refusal",
            |m| matches!(m, HubMessage::Completion(c) if c.invocation_id == "1"),
        )
        .await;
    let HubMessage::Completion(completion) = completion else {
        unreachable!()
    };
    assert_eq!(
        error_of(&completion),
        "Invocation ID '1' is already in use."
    );

    // The first stream keeps going, and can still be cancelled.
    let item = c
        .wait_for("another item", |m| matches!(m, HubMessage::StreamItem(_)))
        .await;
    assert!(matches!(item, HubMessage::StreamItem(i) if i.invocation_id == "1"));
    c.send(signalr_core::CancelInvocation::new("1").into())
        .await;
    let end = c.completion("1").await;
    assert_eq!(end.result, CompletionResult::Void);
    // Whatever was read on the way is items of that stream, all sent before its end.
    for message in c.take_backlog() {
        assert!(
            matches!(&message, HubMessage::StreamItem(i) if i.invocation_id == "1"),
            "{message:?}"
        );
    }

    // After the stream ended, the id can be used again.
    c.send_stream_invocation("1", "Count", json!([2])).await;
    let mut items = Vec::new();
    loop {
        match c.recv().await {
            HubMessage::StreamItem(item) if item.invocation_id == "1" => {
                items.push(common::arg::<u32>(&item.item));
            }
            HubMessage::Completion(done) if done.invocation_id == "1" => {
                assert_eq!(done.result, CompletionResult::Void);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(items, vec![0, 1]);
    let sum: i32 = value_of(&c.invoke("Add", json!([1, 2])).await);
    assert_eq!(sum, 3);
}

fn stream_errors_hub(detailed: bool) -> Hub {
    Hub::builder("StreamErrors")
        .options(HubOptions::default().enable_detailed_errors(detailed))
        .stream("Breaks", |hidden: bool| async move {
            stream::iter(vec![
                Ok(0),
                Ok(1),
                Err(if hidden {
                    HubError::exception("IOException", "disk on fire")
                } else {
                    HubError::new("stream broke")
                }),
                Ok(2),
            ])
        })
        .stream("Refuses", || async {
            Err::<stream::Iter<std::vec::IntoIter<i32>>, _>(HubError::new("not today"))
        })
        .method("Fail", || async { Err::<(), _>(HubError::new("nope")) })
        .method("Add", |a: i32, b: i32| async move { a + b })
        .build()
}

/// Items of stream `id` until its completion.
async fn read_stream(c: &mut Client, id: &str) -> (Vec<i32>, CompletionResult) {
    let mut items = Vec::new();
    loop {
        match c.recv().await {
            HubMessage::StreamItem(item) if item.invocation_id == id => {
                items.push(common::arg::<i32>(&item.item));
            }
            HubMessage::Completion(done) if done.invocation_id == id => {
                return (items, done.result);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_errors_end_the_stream_with_asp_net_core_texts() {
    let server = serve(stream_errors_hub(false)).await;
    let mut c = Client::connect(server.addr).await;

    c.send_stream_invocation("a", "Breaks", json!([false]))
        .await;
    let (items, end) = read_stream(&mut c, "a").await;
    assert_eq!(items, [0, 1]);
    assert_eq!(
        end,
        CompletionResult::Error(
            "An error occurred on the server while streaming results. HubException: stream broke"
                .into()
        )
    );

    c.send_stream_invocation("b", "Breaks", json!([true])).await;
    let (items, end) = read_stream(&mut c, "b").await;
    assert_eq!(items, [0, 1]);
    assert_eq!(
        end,
        CompletionResult::Error("An error occurred on the server while streaming results.".into())
    );

    c.send_stream_invocation("c", "Refuses", json!([])).await;
    let (items, end) = read_stream(&mut c, "c").await;
    assert!(items.is_empty());
    assert_eq!(
        end,
        CompletionResult::Error(
            "An unexpected error occurred invoking 'Refuses' on the server. HubException: not today"
                .into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_errors_with_detailed_errors() {
    let server = serve(stream_errors_hub(true)).await;
    let mut c = Client::connect(server.addr).await;
    c.send_stream_invocation("b", "Breaks", json!([true])).await;
    let (_, end) = read_stream(&mut c, "b").await;
    assert_eq!(
        end,
        CompletionResult::Error(
            "An error occurred on the server while streaming results. IOException: disk on fire"
                .into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_blocking_invocations_get_no_completion_even_when_they_fail() {
    let server = serve(stream_errors_hub(false)).await;
    let mut c = Client::connect(server.addr).await;
    c.send_fire_and_forget("Fail", json!([])).await;
    c.send_fire_and_forget("Nope", json!([])).await;
    c.send_fire_and_forget("Add", json!(["wrong"])).await;
    c.send_fire_and_forget("Add", json!([1, 2])).await;
    // The next message is the completion of this invocation: nothing came for the others.
    c.send_invocation("x", "Add", json!([3, 4])).await;
    match c.recv().await {
        HubMessage::Completion(done) => {
            assert_eq!(done.invocation_id, "x");
            assert_eq!(value_of::<i32>(&done), 7);
        }
        other => panic!("unexpected {other:?}"),
    }
}
