//! Compile-time checks of `#[given_event]`, written as `const fn`s so that a mistake is a compile
//! error with a message built from the schemas (`did you mean ...?`). Not public API.

/// A message assembled in a const context (up to 512 bytes; longer text is cut).
pub struct ConstMessage {
    buf: [u8; 512],
    len: usize,
}

impl ConstMessage {
    const fn new() -> Self {
        Self {
            buf: [0; 512],
            len: 0,
        }
    }

    const fn push(mut self, text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() && self.len < self.buf.len() {
            self.buf[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// The message (cut at a character boundary if it was too long).
    pub const fn as_str(&self) -> &str {
        let mut len = self.len;
        loop {
            match core::str::from_utf8(self.buf.split_at(len).0) {
                Ok(text) => return text,
                Err(_) => len -= 1,
            }
        }
    }
}

/// Compares two strings in a const context.
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const MAX: usize = 64;

/// Levenshtein distance of two names of up to 64 bytes (`usize::MAX` for longer ones).
const fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() > MAX || b.len() > MAX {
        return usize::MAX;
    }
    let mut prev = [0_usize; MAX + 1];
    let mut row = [0_usize; MAX + 1];
    let mut j = 0;
    while j <= b.len() {
        prev[j] = j;
        j += 1;
    }
    let mut i = 1;
    while i <= a.len() {
        row[0] = i;
        let mut j = 1;
        while j <= b.len() {
            let cost = if a[i - 1] == b[j - 1] { 0 } else { 1 };
            let mut best = prev[j - 1] + cost;
            if prev[j] + 1 < best {
                best = prev[j] + 1;
            }
            if row[j - 1] + 1 < best {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            j += 1;
        }
        prev = row;
        i += 1;
    }
    prev[b.len()]
}

/// `None` when `event` has a schema among `siblings` (the events of one `schemas!` call);
/// otherwise the error, with the closest event name as a suggestion.
pub const fn unknown_event(event: &str, siblings: &[(&str, &str)]) -> Option<ConstMessage> {
    if siblings.is_empty() {
        // A hand-written `EventSchema` impl: nothing to compare with.
        return None;
    }
    let mut best = usize::MAX;
    let mut closest = 0;
    let mut i = 0;
    while i < siblings.len() {
        if str_eq(siblings[i].0, event) {
            return None;
        }
        let d = distance(siblings[i].0, event);
        if d < best {
            best = d;
            closest = i;
        }
        i += 1;
    }
    let msg = ConstMessage::new()
        .push("no schema defines the event `")
        .push(event)
        .push("`: there is no `")
        .push(event)
        .push(".avsc` in the schemas folder of the payload type");
    if best <= 2 + event.len() / 4 {
        return Some(
            msg.push("; did you mean `")
                .push(siblings[closest].0)
                .push("`?"),
        );
    }
    let mut msg = msg.push("; its events are");
    let mut i = 0;
    while i < siblings.len() {
        msg = msg
            .push(if i == 0 { " `" } else { ", `" })
            .push(siblings[i].0)
            .push("`");
        i += 1;
    }
    Some(msg)
}

/// `None` when the payload type (generated for `payload_event`) is `event`'s; otherwise the error
/// naming the type to use. An `event` with no schema is [`unknown_event`]'s to report.
pub const fn wrong_payload(
    event: &str,
    payload_event: &str,
    siblings: &[(&str, &str)],
) -> Option<ConstMessage> {
    if str_eq(event, payload_event) {
        return None;
    }
    let mut expected = "";
    let mut given = "the payload type";
    let mut i = 0;
    while i < siblings.len() {
        if str_eq(siblings[i].0, event) {
            expected = siblings[i].1;
        }
        if str_eq(siblings[i].0, payload_event) {
            given = siblings[i].1;
        }
        i += 1;
    }
    if expected.is_empty() {
        if siblings.is_empty() {
            return Some(
                ConstMessage::new()
                    .push("the payload type is generated for `")
                    .push(payload_event)
                    .push("`, not for `")
                    .push(event)
                    .push("`"),
            );
        }
        return None;
    }
    Some(
        ConstMessage::new()
            .push("`")
            .push(given)
            .push("` is the payload of `")
            .push(payload_event)
            .push("`, not of `")
            .push(event)
            .push("`: the handler takes `Event<")
            .push(expected)
            .push(">`"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIBLINGS: &[(&str, &str)] = &[
        ("command.user.create", "CommandUserCreate"),
        ("event.user.created", "EventUserCreated"),
    ];

    #[test]
    fn suggests_the_closest_event() {
        assert!(unknown_event("command.user.create", SIBLINGS).is_none());
        let msg = unknown_event("command.user.creat", SIBLINGS).unwrap();
        assert!(
            msg.as_str()
                .ends_with("did you mean `command.user.create`?"),
            "{}",
            msg.as_str()
        );
        let msg = unknown_event("billing.paid", SIBLINGS).unwrap();
        assert!(msg
            .as_str()
            .ends_with("its events are `command.user.create`, `event.user.created`"));
    }

    #[test]
    fn names_the_payload_to_use() {
        assert!(wrong_payload("event.user.created", "event.user.created", SIBLINGS).is_none());
        let msg = wrong_payload("command.user.create", "event.user.created", SIBLINGS).unwrap();
        assert_eq!(
            msg.as_str(),
            "`EventUserCreated` is the payload of `event.user.created`, not of \
             `command.user.create`: the handler takes `Event<CommandUserCreate>`"
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(400);
        let msg = ConstMessage::new().push(&long);
        assert_eq!(msg.as_str().len(), 512);
    }
}
