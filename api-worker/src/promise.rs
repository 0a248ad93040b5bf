//! Awaiting JS promises through one callback per isolate.
//!
//! wasm-bindgen's `JsFuture` makes two closures for every promise it
//! awaits (each a JS function made by its glue and registered for
//! finalization, with the shared state behind an `Rc`) and calls `then`
//! from wasm; a page write awaits eight (its body, the signature check and
//! six statements). Here a wait is a slot in an isolate-wide table, and the
//! JS side reports a settled promise to the one callback made for the
//! isolate, naming the slot and its generation.
//!
//! A wait dropped before its promise settles frees its slot at once and
//! bumps the slot's generation, so the late outcome finds no one waiting
//! and is dropped. That is what lets the Worker's `fetch()` be left behind
//! at its deadline instead of aborted (see platform.rs); with `JsFuture` a
//! promise that never settles would keep its closures and state forever.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use worker::js_sys::Promise;
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, prelude::Closure, JsValue};

#[wasm_bindgen(module = "/js/bridge.js")]
extern "C" {
    #[wasm_bindgen(js_name = setSettle)]
    fn set_settle(callback: &Closure<dyn FnMut(u32, u32, bool, JsValue)>);
    #[wasm_bindgen(js_name = watch)]
    fn watch(promise: &Promise, index: u32, generation: u32);
}

/// One wait for a promise: its slot in the table, until dropped.
pub struct Wait {
    index: u32,
    generation: u32,
}

enum State {
    Free,
    Waiting(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
}

struct Slot {
    generation: u32,
    state: State,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
    /// Whether the JS side has this instance's callback. A new wasm
    /// instance (after a trap) starts without, and hands over its own.
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// The isolate's callback: `index`'s promise of `generation` settled,
/// fulfilled when `ok`. Wakes the wait, or drops the outcome when the
/// wait is gone.
fn on_settle(index: u32, generation: u32, ok: bool, value: JsValue) {
    let waker = TABLE.with_borrow_mut(|table| {
        let slot = table.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        let State::Waiting(waker) = &mut slot.state else {
            return None;
        };
        let waker = waker.take();
        slot.state = State::Settled(if ok { Ok(value) } else { Err(value) });
        waker
    });
    // Woken with the table released: the waker polls the request at once.
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl Wait {
    /// A new wait, for a promise the caller hands to JS with [`Wait::key`]
    /// (`sendFetch` reports its own outcome).
    pub fn new() -> Wait {
        if !REGISTERED.get() {
            let callback = Closure::<dyn FnMut(u32, u32, bool, JsValue)>::new(on_settle);
            set_settle(&callback);
            // Made once per instance and kept for its life.
            callback.forget();
            REGISTERED.set(true);
        }
        TABLE.with_borrow_mut(|table| {
            let index = match table.free.pop() {
                Some(index) => index,
                None => {
                    table.slots.push(Slot {
                        generation: 0,
                        state: State::Free,
                    });
                    (table.slots.len() - 1) as u32
                }
            };
            let slot = &mut table.slots[index as usize];
            slot.state = State::Waiting(None);
            Wait {
                index,
                generation: slot.generation,
            }
        })
    }

    /// The wait for `promise`'s outcome.
    pub fn on(promise: &Promise) -> Wait {
        let wait = Wait::new();
        watch(promise, wait.index, wait.generation);
        wait
    }

    /// The slot index and generation the JS side reports the outcome under.
    pub fn key(&self) -> (u32, u32) {
        (self.index, self.generation)
    }
}

impl Future for Wait {
    type Output = Result<JsValue, JsValue>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        TABLE.with_borrow_mut(|table| {
            let slot = &mut table.slots[self.index as usize];
            match std::mem::replace(&mut slot.state, State::Free) {
                State::Settled(outcome) => Poll::Ready(outcome),
                State::Waiting(_) => {
                    slot.state = State::Waiting(Some(cx.waker().clone()));
                    Poll::Pending
                }
                // Polled again after it gave its outcome.
                State::Free => panic!("a promise wait polled after it finished"),
            }
        })
    }
}

impl Drop for Wait {
    /// Frees the slot; a later outcome for it is dropped.
    fn drop(&mut self) {
        TABLE.with_borrow_mut(|table| {
            let slot = &mut table.slots[self.index as usize];
            slot.state = State::Free;
            slot.generation = slot.generation.wrapping_add(1);
            table.free.push(self.index);
        });
    }
}
