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
//! A wait dropped before its promise settles frees its slot at once; the
//! late outcome names a generation no wait in that slot has any more, and
//! is dropped. That is what lets the Worker's `fetch()` be left behind
//! at its deadline instead of aborted (see platform.rs); with `JsFuture` a
//! promise that never settles would keep its closures and state forever.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;
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

/// The waits of an isolate, in a slab whose slots are reused. Each wait
/// also gets a generation, so that an outcome reported for a wait that
/// ended is told apart from one for the next wait in its slot. Generic in
/// the outcome so that it is tested natively.
struct Table<T> {
    waits: Slab<Entry<T>>,
    /// The generation of the wait opened last.
    generation: u32,
}

struct Entry<T> {
    generation: u32,
    state: State<T>,
}

enum State<T> {
    Waiting(Option<Waker>),
    Settled(T),
    Taken,
}

impl<T> Table<T> {
    const fn new() -> Self {
        Table {
            waits: Slab::new(),
            generation: 0,
        }
    }

    /// A new wait: its slot and generation.
    fn open(&mut self) -> (u32, u32) {
        self.generation = self.generation.wrapping_add(1);
        let index = self.waits.insert(Entry {
            generation: self.generation,
            state: State::Waiting(None),
        });
        (index as u32, self.generation)
    }

    /// Records the outcome of wait (`index`, `generation`); the waker to
    /// wake, if the wait is still there and was polled. An outcome for a
    /// wait that ended (or never was) is dropped.
    fn settle(&mut self, index: u32, generation: u32, outcome: T) -> Option<Waker> {
        let entry = self.waits.get_mut(index as usize)?;
        if entry.generation != generation {
            return None;
        }
        let State::Waiting(waker) = &mut entry.state else {
            return None;
        };
        let waker = waker.take();
        entry.state = State::Settled(outcome);
        waker
    }

    /// The outcome of the wait in `index`, or `Pending` with `waker` kept.
    fn poll(&mut self, index: u32, waker: &Waker) -> Poll<T> {
        let entry = &mut self.waits[index as usize];
        match std::mem::replace(&mut entry.state, State::Taken) {
            State::Settled(outcome) => Poll::Ready(outcome),
            State::Waiting(_) => {
                entry.state = State::Waiting(Some(waker.clone()));
                Poll::Pending
            }
            State::Taken => panic!("a promise wait polled after it finished"),
        }
    }

    /// Ends the wait in `index`, freeing its slot.
    fn close(&mut self, index: u32) {
        self.waits.remove(index as usize);
    }
}

type Outcome = Result<JsValue, JsValue>;

thread_local! {
    static TABLE: RefCell<Table<Outcome>> = const { RefCell::new(Table::new()) };
    /// Whether the JS side has this instance's callback. A new wasm
    /// instance (after a trap) starts without, and hands over its own.
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// The isolate's callback: `index`'s promise of `generation` settled,
/// fulfilled when `ok`. Wakes the wait, or drops the outcome when the
/// wait is gone.
fn on_settle(index: u32, generation: u32, ok: bool, value: JsValue) {
    let outcome = if ok { Ok(value) } else { Err(value) };
    let waker = TABLE.with_borrow_mut(|table| table.settle(index, generation, outcome));
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
        let (index, generation) = TABLE.with_borrow_mut(Table::open);
        Wait { index, generation }
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
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        TABLE.with_borrow_mut(|table| table.poll(self.index, cx.waker()))
    }
}

impl Drop for Wait {
    /// Frees the slot; a later outcome for it is dropped.
    fn drop(&mut self) {
        TABLE.with_borrow_mut(|table| table.close(self.index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with one wait, polled once.
    fn one_polled_wait<T>() -> (Table<T>, u32, u32) {
        let mut table = Table::new();
        let (index, generation) = table.open();
        assert!(table.poll(index, Waker::noop()).is_pending());
        (table, index, generation)
    }

    #[test]
    fn an_outcome_wakes_its_wait_and_is_given_once() {
        let (mut table, index, generation) = one_polled_wait();
        assert!(
            table.settle(index, generation, 7).is_some(),
            "a polled wait is woken"
        );
        assert_eq!(table.poll(index, Waker::noop()), Poll::Ready(7));
        table.close(index);
        assert!(table.waits.is_empty());
    }

    #[test]
    fn an_outcome_before_the_first_poll_is_kept() {
        let mut table = Table::new();
        let (index, generation) = table.open();
        assert!(table.settle(index, generation, "early").is_none());
        assert_eq!(table.poll(index, Waker::noop()), Poll::Ready("early"));
    }

    #[test]
    fn a_late_outcome_for_an_ended_wait_does_not_reach_the_next_wait_in_its_slot() {
        let (mut table, first, first_generation) = one_polled_wait();
        // Given up (its deadline passed): the slot goes to the next wait.
        table.close(first);
        let (second, second_generation) = table.open();
        assert_eq!(second, first, "the slot is reused");
        assert!(table.poll(second, Waker::noop()).is_pending());
        assert!(table.settle(first, first_generation, 1).is_none());
        assert!(
            table.poll(second, Waker::noop()).is_pending(),
            "the late outcome was dropped"
        );
        assert!(table.settle(second, second_generation, 2).is_some());
        assert_eq!(table.poll(second, Waker::noop()), Poll::Ready(2));
    }

    #[test]
    fn an_outcome_for_a_wait_never_opened_is_dropped() {
        let (mut table, index, generation) = one_polled_wait::<u8>();
        assert!(table.settle(index + 1, generation, 1).is_none());
        assert!(table.settle(index, generation.wrapping_add(1), 1).is_none());
        assert!(table.poll(index, Waker::noop()).is_pending());
    }
}
