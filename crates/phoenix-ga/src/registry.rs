//! The command table: every family's commands, by dialect, with the operator's allow
//! and block lists applied.

use std::collections::{HashMap, HashSet};

use phoenix_proto::Dialect;

use crate::command::Entry;
use crate::error::Error;

/// Every command the agent has, and which of them are enabled.
#[derive(Debug)]
pub struct Registry {
    /// In registration order (the families' order, then each family's own).
    all: Vec<&'static Entry>,
    by_name: HashMap<(Dialect, &'static str), &'static Entry>,
    disabled: HashSet<&'static str>,
}

/// The operator's choice of commands: ours (`--block-commands`, `--allow-commands`),
/// where a name no dialect has is an error, and qemu-ga's (`-b`, `-a`), where it is
/// logged and ignored, so that a configuration written for a newer qemu-ga does not
/// stop the agent. The two kinds add up.
#[derive(Debug, Default, Clone)]
pub struct Selection<'a> {
    /// Commands refused.
    pub block: &'a [String],
    /// When given, the only commands answered (minus the blocked ones).
    pub allow: Option<&'a [String]>,
    /// Commands refused, unknown names ignored.
    pub lenient_block: &'a [String],
    /// When given, the only commands answered, unknown names ignored.
    pub lenient_allow: Option<&'a [String]>,
}

impl Registry {
    /// The table of `entries`, with `selection` applied. A name in either list that no
    /// dialect has is an error, so a typo never leaves a command enabled.
    pub fn new(
        entries: impl IntoIterator<Item = &'static Entry>,
        selection: &Selection<'_>,
    ) -> Result<Self, String> {
        let all: Vec<&'static Entry> = entries.into_iter().collect();
        let mut by_name = HashMap::new();
        for e in &all {
            let clash = by_name.insert((e.dialect, e.name), *e);
            assert!(clash.is_none(), "command {} registered twice", e.name);
        }
        let known = |n: &str| all.iter().any(|e| e.name == n);
        let check = |list: &[String], flag: &str| -> Result<(), String> {
            match list.iter().find(|n| !known(n)) {
                Some(n) => Err(format!("{flag}: unknown command \"{n}\"")),
                None => Ok(()),
            }
        };
        check(selection.block, "--block-commands")?;
        if let Some(allow) = selection.allow {
            check(allow, "--allow-commands")?;
        }
        let lenient = selection
            .lenient_block
            .iter()
            .chain(selection.lenient_allow.into_iter().flatten());
        for unknown in lenient.filter(|n| !n.is_empty() && !known(n)) {
            tracing::warn!(command = %unknown, "unknown command in -b/-a ignored");
        }
        let allow: Option<Vec<&String>> = match (selection.allow, selection.lenient_allow) {
            (None, None) => None,
            (a, b) => Some(a.into_iter().chain(b).flatten().collect()),
        };
        let enabled = |name: &str| {
            !selection.block.iter().any(|b| b == name)
                && !selection.lenient_block.iter().any(|b| b == name)
                && allow.as_ref().is_none_or(|a| a.iter().any(|x| *x == name))
        };
        let disabled = all.iter().map(|e| e.name).filter(|n| !enabled(n)).collect();
        Ok(Self {
            all,
            by_name,
            disabled,
        })
    }

    /// The command `name` of `dialect`; disabled and unknown commands give the
    /// matching error.
    pub fn find(&self, dialect: Dialect, name: &str) -> Result<&'static Entry, Error> {
        match self.by_name.get(&(dialect, name)) {
            Some(e) if self.disabled.contains(e.name) => Err(Error::Disabled(name.to_string())),
            Some(e) => Ok(e),
            None => Err(Error::UnknownCommand(name.to_string())),
        }
    }

    /// Every command of `dialect` and whether it is enabled, in registration order.
    pub fn listed(&self, dialect: Dialect) -> impl Iterator<Item = (&'static Entry, bool)> + '_ {
        self.all
            .iter()
            .copied()
            .filter(move |e| e.dialect == dialect)
            .map(|e| (e, !self.disabled.contains(e.name)))
    }

    /// The enabled commands of `dialect`, in registration order.
    pub fn enabled(&self, dialect: Dialect) -> impl Iterator<Item = &'static Entry> + '_ {
        self.all
            .iter()
            .copied()
            .filter(move |e| e.dialect == dialect && !self.disabled.contains(e.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::entry;
    use phoenix_proto::types::core::cmd::{AgentShutdown, GetCommands, Ping};

    static ENTRIES: [Entry; 3] = [
        entry::<Ping>(),
        entry::<GetCommands>(),
        entry::<AgentShutdown>(),
    ];

    fn names(r: &Registry) -> Vec<&'static str> {
        r.enabled(Dialect::Phoenix).map(|e| e.name).collect()
    }

    #[test]
    fn lists_apply_and_typos_are_refused() {
        let block = vec!["agent-shutdown".to_string()];
        let sel = Selection {
            block: &block,
            ..Selection::default()
        };
        let r = Registry::new(&ENTRIES, &sel).unwrap();
        assert_eq!(names(&r), ["ping", "get-commands"]);
        r.find(Dialect::Phoenix, "ping").unwrap();
        let e = r.find(Dialect::Phoenix, "agent-shutdown").unwrap_err();
        assert_eq!(e.message(), "command \"agent-shutdown\" has been disabled");
        let e = r.find(Dialect::Phoenix, "nope").unwrap_err();
        assert_eq!(e.message(), "unknown command \"nope\"");

        let allow = vec!["ping".to_string()];
        let sel = Selection {
            allow: Some(&allow),
            ..Selection::default()
        };
        let r = Registry::new(&ENTRIES, &sel).unwrap();
        assert_eq!(names(&r), ["ping"]);

        let typo = vec!["pnig".to_string()];
        let sel = Selection {
            block: &typo,
            ..Selection::default()
        };
        let e = Registry::new(&ENTRIES, &sel).unwrap_err();
        assert_eq!(e, "--block-commands: unknown command \"pnig\"");
        let sel = Selection {
            allow: Some(&typo),
            ..Selection::default()
        };
        let e = Registry::new(&ENTRIES, &sel).unwrap_err();
        assert_eq!(e, "--allow-commands: unknown command \"pnig\"");

        // qemu-ga's lists: unknown names are ignored, known ones apply.
        let lenient = vec!["pnig".to_string(), "agent-shutdown".to_string()];
        let sel = Selection {
            lenient_block: &lenient,
            ..Selection::default()
        };
        let r = Registry::new(&ENTRIES, &sel).unwrap();
        assert_eq!(names(&r), ["ping", "get-commands"]);
        let sel = Selection {
            lenient_allow: Some(&lenient),
            ..Selection::default()
        };
        let r = Registry::new(&ENTRIES, &sel).unwrap();
        assert_eq!(names(&r), ["agent-shutdown"]);
    }
}
