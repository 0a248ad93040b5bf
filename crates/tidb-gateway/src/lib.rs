//! Local TiDB HTTP gateway stand-in (work in progress).
