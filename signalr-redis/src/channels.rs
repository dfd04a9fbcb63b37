//! Channel names, as `RedisChannels.cs` builds them (plus StackExchange.Redis's
//! `ChannelPrefix`, prepended with no separator).

/// The channel names of one hub on one server.
#[derive(Debug, Clone)]
pub(crate) struct Channels {
    /// `{ChannelPrefix}{hub channel name}:`.
    base: String,
    ack: String,
    return_: String,
}

/// What a received channel name designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    All,
    Group(&'a str),
    Connection(&'a str),
    User(&'a str),
    GroupCommands,
    Ack,
    Return,
    /// Another hub's or another server's channel (never subscribed, so never seen).
    Other,
}

impl Channels {
    pub(crate) fn new(prefix: &str, hub: &str, server_name: &str) -> Self {
        let base = format!("{prefix}{hub}:");
        Self {
            ack: format!("{base}internal:ack:{server_name}"),
            return_: format!("{base}internal:return:{server_name}"),
            base,
        }
    }

    /// `P:all`.
    pub(crate) fn all(&self) -> String {
        format!("{}all", self.base)
    }

    /// `P:group:{group}`.
    pub(crate) fn group(&self, group: &str) -> String {
        format!("{}group:{group}", self.base)
    }

    /// `P:connection:{id}`.
    pub(crate) fn connection(&self, connection_id: &str) -> String {
        format!("{}connection:{connection_id}", self.base)
    }

    /// `P:user:{user}`.
    pub(crate) fn user(&self, user: &str) -> String {
        format!("{}user:{user}", self.base)
    }

    /// `P:internal:groups`.
    pub(crate) fn group_commands(&self) -> String {
        format!("{}internal:groups", self.base)
    }

    /// `P:internal:ack:{server}` for another server.
    pub(crate) fn ack_for(&self, server_name: &str) -> String {
        format!("{}internal:ack:{server_name}", self.base)
    }

    /// This server's return channel, `P:internal:return:{server}`.
    pub(crate) fn return_channel(&self) -> &str {
        &self.return_
    }

    /// The channels every server subscribes to for as long as it runs.
    pub(crate) fn fixed(&self) -> Vec<String> {
        vec![
            self.all(),
            self.group_commands(),
            self.ack.clone(),
            self.return_.clone(),
        ]
    }

    pub(crate) fn parse<'a>(&self, channel: &'a str) -> Incoming<'a> {
        let Some(rest) = channel.strip_prefix(self.base.as_str()) else {
            return Incoming::Other;
        };
        if rest == "all" {
            Incoming::All
        } else if rest == "internal:groups" {
            Incoming::GroupCommands
        } else if channel == self.ack {
            Incoming::Ack
        } else if channel == self.return_ {
            Incoming::Return
        } else if let Some(group) = rest.strip_prefix("group:") {
            Incoming::Group(group)
        } else if let Some(id) = rest.strip_prefix("connection:") {
            Incoming::Connection(id)
        } else if let Some(user) = rest.strip_prefix("user:") {
            Incoming::User(user)
        } else {
            Incoming::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_reference() {
        let c = Channels::new("", "Ns.ChatHub", "web01_0123");
        assert_eq!(c.all(), "Ns.ChatHub:all");
        assert_eq!(c.group("room:1"), "Ns.ChatHub:group:room:1");
        assert_eq!(c.connection("abc"), "Ns.ChatHub:connection:abc");
        assert_eq!(c.user("alice"), "Ns.ChatHub:user:alice");
        assert_eq!(c.group_commands(), "Ns.ChatHub:internal:groups");
        assert_eq!(c.fixed()[2], "Ns.ChatHub:internal:ack:web01_0123");
        assert_eq!(c.ack_for("other"), "Ns.ChatHub:internal:ack:other");
        assert_eq!(c.return_channel(), "Ns.ChatHub:internal:return:web01_0123");
    }

    #[test]
    fn prefix_is_prepended_without_separator() {
        let c = Channels::new("MyApp", "Ns.Outer+ChatHub", "s");
        assert_eq!(c.all(), "MyAppNs.Outer+ChatHub:all");
        assert_eq!(c.parse("MyAppNs.Outer+ChatHub:all"), Incoming::All);
        assert_eq!(c.parse("Ns.Outer+ChatHub:all"), Incoming::Other);
    }

    #[test]
    fn parses_every_kind() {
        let c = Channels::new("", "H", "me");
        assert_eq!(c.parse("H:group:a:b"), Incoming::Group("a:b"));
        assert_eq!(c.parse("H:connection:x"), Incoming::Connection("x"));
        assert_eq!(c.parse("H:user:u"), Incoming::User("u"));
        assert_eq!(c.parse("H:internal:groups"), Incoming::GroupCommands);
        assert_eq!(c.parse("H:internal:ack:me"), Incoming::Ack);
        assert_eq!(c.parse("H:internal:return:me"), Incoming::Return);
        assert_eq!(c.parse("H:internal:ack:you"), Incoming::Other);
        assert_eq!(c.parse("Hx:all"), Incoming::Other);
    }
}
