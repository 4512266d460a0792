//! F6: newsletters and advertising to `Promotions`, social-network notifications to
//! `SocialNetworks` (opt-in per address). Decided from headers only: what bulk mailers and
//! social networks announce about themselves.

use mail_parser::Message;

use crate::message::{header_from, header_text};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Promotions,
    Social,
}

impl Category {
    pub fn folder(self) -> &'static str {
        match self {
            Category::Promotions => "Promotions",
            Category::Social => "SocialNetworks",
        }
    }
}

/// Sender domains of social networks (their notification mail; subdomains count).
const SOCIAL: &[&str] = &[
    "facebookmail.com",
    "facebook.com",
    "instagram.com",
    "linkedin.com",
    "twitter.com",
    "x.com",
    "pinterest.com",
    "tiktok.com",
    "reddit.com",
    "redditmail.com",
    "mastodon.social",
    "xing.com",
    "snapchat.com",
    "youtube.com",
    "quora.com",
    "meetup.com",
    "discord.com",
    "tumblr.com",
];

/// Header fields only bulk-mailing services add.
const BULK_HEADERS: &[&str] = &[
    "X-Campaign",
    "X-CampaignID",
    "X-Campaign-Id",
    "X-Mailchimp-Campaign",
    "X-MC-User",
    "X-SG-EID",
    "X-Mailgun-Tag",
    "X-SES-Outgoing",
    "X-Newsletter",
    "X-Mailer-RecptId",
    "X-rpcampaign",
    "X-CSA-Complaints",
];

fn domain_in(domain: &str, list: &[&str]) -> bool {
    list.iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
}

pub fn classify(msg: &Message<'_>) -> Option<Category> {
    let from = header_from(msg);
    let domain = from.rsplit_once('@').map(|x| x.1).unwrap_or("");
    if !domain.is_empty() && domain_in(domain, SOCIAL) {
        return Some(Category::Social);
    }
    // A mailing list someone subscribed to on purpose (List-Id without bulk markers) is not
    // a promotion; List-Unsubscribe with a one-click unsubscribe (RFC 8058) is what senders of
    // newsletters and advertising add.
    let precedence = header_text(msg, "Precedence").map(str::to_ascii_lowercase);
    let bulk = precedence.as_deref() == Some("bulk")
        || header_text(msg, "List-Unsubscribe-Post").is_some()
        || BULK_HEADERS.iter().any(|h| header_text(msg, h).is_some())
        || (header_text(msg, "List-Unsubscribe").is_some()
            && header_text(msg, "List-Id").is_none());
    bulk.then_some(Category::Promotions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn c(raw: &str) -> Option<Category> {
        classify(&MessageParser::default().parse(raw.as_bytes()).unwrap())
    }

    #[test]
    fn newsletters_social_and_lists() {
        assert_eq!(
            c(
                "From: Shop <news@shop.example>\r\nList-Unsubscribe: <https://shop.example/u>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nSale\r\n"
            ),
            Some(Category::Promotions)
        );
        assert_eq!(
            c("From: a@b.example\r\nPrecedence: bulk\r\n\r\nx\r\n"),
            Some(Category::Promotions)
        );
        assert_eq!(
            c(
                "From: LinkedIn <messages-noreply@linkedin.com>\r\n\r\nYou appeared in 5 searches\r\n"
            ),
            Some(Category::Social)
        );
        assert_eq!(
            c("From: Facebook <notification@facebookmail.com>\r\n\r\nx\r\n"),
            Some(Category::Social)
        );
        // A discussion list is not a promotion; a person is neither.
        assert_eq!(
            c(
                "From: dev@lists.example\r\nList-Id: <dev.lists.example>\r\nList-Unsubscribe: <mailto:u@lists.example>\r\n\r\nx\r\n"
            ),
            None
        );
        assert_eq!(c("From: anna@example.org\r\n\r\nhi\r\n"), None);
    }
}
