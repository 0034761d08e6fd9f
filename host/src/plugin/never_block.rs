//! WASI's waiting calls, made so that they never wait, for plugins called without a fiber.
//!
//! A plugin is called synchronously on the thread that needs its answer, with WASI linked in
//! its synchronous form (`add_to_linker_sync`), which costs less per call than an async call:
//! that one runs on a fiber of its own. But wasmtime-wasi's synchronous calls that may wait
//! (polling, blocking reads and writes, dropping a stream) enter a tokio runtime to wait, which
//! must not happen on a tokio worker. This module replaces exactly those calls: each runs the
//! asynchronous implementation once, and a plugin whose call would wait (a sleep, a poll of a
//! clock) fails with [`Blocked`], which vane counts as a deadline. A policy is a computation;
//! it never has anything to wait for. Writes to stdout and stderr never wait (they go to the
//! log), so they still work. Making a UDP socket, which wasmtime-wasi's synchronous form also
//! does by entering a runtime (before it checks whether UDP is allowed), is refused at once, as
//! vane's plugins may not use the network. The other such calls (files, a socket's own calls)
//! need a descriptor or a socket, which a plugin cannot get.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable, ResourceType};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::p2::bindings::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi::p2::bindings::io::streams::{
    self, Host as _, HostInputStream as _, HostOutputStream as _,
};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamResult, UdpSocket};

/// The version of `wasi:io` that wasmtime-wasi links; a plugin importing an earlier 0.2
/// version is given these same definitions.
const POLL: &str = "wasi:io/poll@0.2.12";
/// See [`POLL`].
const STREAMS: &str = "wasi:io/streams@0.2.12";
/// See [`POLL`].
const UDP_CREATE_SOCKET: &str = "wasi:sockets/udp-create-socket@0.2.12";

/// A call into the plugin was abandoned because the plugin waited on the host.
#[derive(Debug, thiserror::Error)]
#[error("the plugin blocked waiting on the host, which a policy must never do")]
pub(crate) struct Blocked;

/// Links WASI for plugins called without a fiber: wasmtime-wasi's synchronous WASI, with its
/// waiting calls replaced by ones that never wait.
pub(crate) fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    add_poll(linker)?;
    add_streams(linker)?;
    add_udp_create_socket(linker)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// `wasi:io/poll`: `poll`, `pollable.ready` and `pollable.block`.
fn add_poll<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, T>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            now(table(&mut store).poll(pollables)).map(|ready| (ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.ready",
        |mut store: StoreContextMut<'_, T>, (pollable,): (Resource<DynPollable>,)| {
            now(table(&mut store).ready(pollable)).map(|ready| (ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, T>, (pollable,): (Resource<DynPollable>,)| {
            now(table(&mut store).block(pollable))
        },
    )?;
    Ok(())
}

/// `wasi:io/streams`: the blocking reads and writes, and dropping a stream.
fn add_streams<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let mut streams = linker.instance(STREAMS)?;
    streams.resource(
        "output-stream",
        ResourceType::host::<DynOutputStream>(),
        |mut store, rep| {
            let table = store.data_mut().ctx().table;
            now(streams::HostOutputStream::drop(
                table,
                Resource::new_own(rep),
            ))
        },
    )?;
    streams.resource(
        "input-stream",
        ResourceType::host::<DynInputStream>(),
        |mut store, rep| {
            let table = store.data_mut().ctx().table;
            now(streams::HostInputStream::drop(
                table,
                Resource::new_own(rep),
            ))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut store: StoreContextMut<'_, T>,
         (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let table = table(&mut store);
            let result = now_or_fail(table.blocking_write_and_flush(stream, bytes));
            answer(table, result)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-zeroes-and-flush",
        |mut store: StoreContextMut<'_, T>, (stream, len): (Resource<DynOutputStream>, u64)| {
            let table = table(&mut store);
            let result = now_or_fail(table.blocking_write_zeroes_and_flush(stream, len));
            answer(table, result)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut store: StoreContextMut<'_, T>, (stream,): (Resource<DynOutputStream>,)| {
            let table = table(&mut store);
            let result = now_or_fail(table.blocking_flush(stream));
            answer(table, result)
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-splice",
        |mut store: StoreContextMut<'_, T>,
         (stream, from, len): (Resource<DynOutputStream>, Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let result = now_or_fail(table.blocking_splice(stream, from, len));
            answer(table, result)
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-read",
        |mut store: StoreContextMut<'_, T>, (stream, len): (Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let result = now_or_fail(table.blocking_read(stream, len));
            answer(table, result)
        },
    )?;
    streams.func_wrap(
        "[method]input-stream.blocking-skip",
        |mut store: StoreContextMut<'_, T>, (stream, len): (Resource<DynInputStream>, u64)| {
            let table = table(&mut store);
            let result = now_or_fail(table.blocking_skip(stream, len));
            answer(table, result)
        },
    )?;
    Ok(())
}

/// `wasi:sockets/udp-create-socket`: always refused, as no plugin may use the network.
fn add_udp_create_socket<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.instance(UDP_CREATE_SOCKET)?.func_wrap(
        "create-udp-socket",
        |_store: StoreContextMut<'_, T>, (_family,): (IpAddressFamily,)| {
            let refused: Result<Resource<UdpSocket>, ErrorCode> = Err(ErrorCode::AccessDenied);
            Ok((refused,))
        },
    )?;
    Ok(())
}

/// The store's table of WASI resources.
fn table<'a, T: WasiView>(store: &'a mut StoreContextMut<'_, T>) -> &'a mut ResourceTable {
    store.data_mut().ctx().table
}

/// A stream call's result as the guest receives it: a value, a stream error, or a trap.
fn answer<V>(
    table: &mut ResourceTable,
    result: StreamResult<V>,
) -> wasmtime::Result<(Result<V, streams::StreamError>,)> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(err) => Ok((Err(table.convert_stream_error(err)?),)),
    }
}

/// The output of `call` if it is ready at its first poll; [`Blocked`] if it would wait.
fn now<V>(call: impl Future<Output = wasmtime::Result<V>>) -> wasmtime::Result<V> {
    finish_now(call).unwrap_or_else(|| Err(wasmtime::Error::new(Blocked)))
}

/// [`now`] for a stream call: [`Blocked`] is a trap, which a stream error can carry.
fn now_or_fail<V>(call: impl Future<Output = StreamResult<V>>) -> StreamResult<V> {
    finish_now(call).unwrap_or_else(|| Err(wasmtime_wasi::p2::StreamError::Trap(Blocked.into())))
}

/// Runs `call` to completion if it needs no waiting; `None` if it would wait (it is dropped).
fn finish_now<F: Future>(call: F) -> Option<F::Output> {
    match pin!(call).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::Engine;
    use wasmtime::component::{Linker, ResourceTable, ResourceType};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    use super::{POLL, STREAMS, UDP_CREATE_SOCKET};

    struct Ctx {
        wasi: WasiCtx,
        table: ResourceTable,
    }

    impl WasiView for Ctx {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    /// A replacement under a name wasmtime-wasi does not define (after an upgrade moves
    /// `wasi:io` past the version named here) would be linked beside the original, and the
    /// waiting call would come back unseen: each name must be one wasmtime-wasi defines.
    #[test]
    fn every_replaced_call_is_one_wasmtime_wasi_links() {
        let engine = Engine::default();
        for (instance, function) in [
            (POLL, "poll"),
            (POLL, "[method]pollable.ready"),
            (POLL, "[method]pollable.block"),
            (STREAMS, "[method]output-stream.blocking-write-and-flush"),
            (
                STREAMS,
                "[method]output-stream.blocking-write-zeroes-and-flush",
            ),
            (STREAMS, "[method]output-stream.blocking-flush"),
            (STREAMS, "[method]output-stream.blocking-splice"),
            (STREAMS, "[method]input-stream.blocking-read"),
            (STREAMS, "[method]input-stream.blocking-skip"),
            (UDP_CREATE_SOCKET, "create-udp-socket"),
        ] {
            let mut linker = Linker::<Ctx>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
            let defined_again = linker
                .instance(instance)
                .and_then(|mut wasi| wasi.func_wrap(function, |_, (): ()| Ok(())));
            assert!(
                defined_again.is_err(),
                "wasmtime-wasi links no {instance} {function}: never_block replaces nothing"
            );
        }
        for resource in ["output-stream", "input-stream"] {
            let mut linker = Linker::<Ctx>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
            let defined_again = linker.instance(STREAMS).and_then(|mut wasi| {
                wasi.resource(resource, ResourceType::host::<u8>(), |_, _| Ok(()))
            });
            assert!(
                defined_again.is_err(),
                "wasmtime-wasi links no {STREAMS} {resource}: its drop is not replaced"
            );
        }
        // And the replacements themselves link, over wasmtime-wasi's.
        let mut linker = Linker::<Ctx>::new(&engine);
        super::add_to_linker(&mut linker).unwrap();
    }
}
