//! Fans' emails as MIME: the templates in `templates/email/` (plain text and HTML,
//! rendered by minijinja, which escapes everything put into the HTML). A booking's
//! confirmation carries each ticket's QR code as an inline PNG the HTML shows by its
//! `Content-ID`; a waitlist offer's is plain text and HTML alone.
//!
//! ```text
//! multipart/alternative
//! ├── text/plain                      confirmation.txt
//! └── multipart/related
//!     ├── text/html                   confirmation.html (<img src="cid:ticket-<id>@boxoffice">)
//!     └── image/png  (inline, one per ticket, Content-ID <ticket-<id>@boxoffice>)
//! ```

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use minijinja::Environment;
use qrcode::types::Color;
use qrcode::{EcLevel, QrCode};
use sales::confirmations::{Confirmation, OfferNotice};
use serde::Serialize;
use uuid::Uuid;

/// A QR module's side in pixels, and the quiet zone's width in modules (the
/// specification's four).
const MODULE_PX: usize = 4;
const QUIET_MODULES: usize = 4;

/// Why an email could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
    #[error("PNG: {0}")]
    Png(#[from] png::EncodingError),
    #[error("message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("ticket {0} has no secret")]
    NoSecret(Uuid),
}

/// The templates, compiled in.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        // Block tags take their line with them, so the plain text has no blank gaps.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for (name, source) in [
            ("confirmation.txt", include_str!("../templates/email/confirmation.txt")),
            ("confirmation.html", include_str!("../templates/email/confirmation.html")),
            ("offer.txt", include_str!("../templates/email/offer.txt")),
            ("offer.html", include_str!("../templates/email/offer.html")),
        ] {
            env.add_template(name, source).expect("the email templates parse (checked by the tests)");
        }
        Self { env }
    }
}

#[derive(Serialize)]
struct Context<'a> {
    event_name: &'a str,
    starts_at: Option<String>,
    booking_id: Uuid,
    total: String,
    refund_policy: &'a str,
    booking_url: &'a str,
    tickets: Vec<TicketContext>,
}

#[derive(Serialize)]
struct TicketContext {
    id: Uuid,
    /// The seat's label, or "General admission".
    place: String,
    section: String,
    content_id: String,
    qr_width: usize,
}

#[derive(Serialize)]
struct OfferContext<'a> {
    event_name: &'a str,
    starts_at: Option<String>,
    expires_at: String,
    total: String,
    offer_url: &'a str,
    places: Vec<PlaceContext>,
}

#[derive(Serialize)]
struct PlaceContext {
    /// The seat's label, or "General admission".
    place: String,
    section: String,
}

/// A ticket's QR code, as the email carries it.
pub struct QrImage {
    pub png: Vec<u8>,
    /// Width and height in pixels.
    pub width: usize,
}

impl Templates {
    /// The email to `to` confirming `confirmation`, with `booking_url` as the link to
    /// the fan's page. Its `Message-ID` is the outbox message's, so a receiver can tell
    /// a repeat (delivery is at least once) from another email.
    pub fn confirmation(
        &self,
        from: &Mailbox,
        to: Mailbox,
        confirmation: &Confirmation,
        booking_url: &str,
        message_id: Uuid,
    ) -> Result<Message, MailError> {
        let mut tickets = Vec::with_capacity(confirmation.tickets.len());
        let mut images = Vec::with_capacity(confirmation.tickets.len());
        for ticket in &confirmation.tickets {
            let secret = ticket.secret.as_deref().ok_or(MailError::NoSecret(ticket.id))?;
            let qr = qr_png(secret)?;
            let content_id = format!("ticket-{}@boxoffice", ticket.id);
            tickets.push(TicketContext {
                id: ticket.id,
                place: ticket.label.clone().unwrap_or_else(|| "General admission".to_owned()),
                section: ticket.section_name.clone(),
                content_id: content_id.clone(),
                qr_width: qr.width,
            });
            images.push((content_id, qr.png));
        }
        let context = Context {
            event_name: &confirmation.event_name,
            starts_at: confirmation.starts_at.map(when),
            booking_id: confirmation.booking_id,
            total: money(confirmation.total.amount_minor, &confirmation.total.currency),
            refund_policy: &confirmation.refund_policy,
            booking_url,
            tickets,
        };
        let text = self.env.get_template("confirmation.txt")?.render(&context)?;
        let html = self.env.get_template("confirmation.html")?.render(&context)?;
        let png = ContentType::parse("image/png").expect("a valid content type");
        let related =
            images.into_iter().fold(MultiPart::related().singlepart(SinglePart::html(html)), |related, (id, image)| {
                related.singlepart(Attachment::new_inline(id).body(image, png.clone()))
            });
        Ok(Message::builder()
            .from(from.clone())
            .to(to)
            .subject(format!("Your booking for {} is confirmed", confirmation.event_name))
            .message_id(Some(format!("<{message_id}@boxoffice>")))
            .multipart(MultiPart::alternative().singlepart(SinglePart::plain(text)).multipart(related))?)
    }

    /// The email to `to` telling of the waitlist offer `offer`, with `offer_url` as the
    /// link to take or decline it; its `Message-ID` is the outbox message's.
    pub fn offer(
        &self,
        from: &Mailbox,
        to: Mailbox,
        offer: &OfferNotice,
        offer_url: &str,
        message_id: Uuid,
    ) -> Result<Message, MailError> {
        let context = OfferContext {
            event_name: &offer.event_name,
            starts_at: offer.starts_at.map(when),
            expires_at: when(offer.expires_at),
            total: money(offer.total.amount_minor, &offer.total.currency),
            offer_url,
            places: offer
                .places
                .iter()
                .map(|(label, section)| PlaceContext {
                    place: label.clone().unwrap_or_else(|| "General admission".to_owned()),
                    section: section.clone(),
                })
                .collect(),
        };
        let text = self.env.get_template("offer.txt")?.render(&context)?;
        let html = self.env.get_template("offer.html")?.render(&context)?;
        Ok(Message::builder()
            .from(from.clone())
            .to(to)
            .subject(format!("Places for {} are kept for you", offer.event_name))
            .message_id(Some(format!("<{message_id}@boxoffice>")))
            .multipart(MultiPart::alternative_plain_html(text, html))?)
    }
}

/// A moment as the emails write it.
fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `amount_minor` in the currency's major unit ("12.50 EUR", "1250 JPY", "1.250 KWD"),
/// by ISO 4217's minor units: none or three for the currencies listed, two otherwise.
fn money(amount_minor: i64, currency: &str) -> String {
    const NO_MINOR_UNIT: [&str; 16] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE_DECIMALS: [&str; 5] = ["BHD", "IQD", "JOD", "KWD", "OMR"];
    if NO_MINOR_UNIT.contains(&currency) {
        return format!("{amount_minor} {currency}");
    }
    let (unit, decimals) = if THREE_DECIMALS.contains(&currency) { (1_000, 3) } else { (100, 2) };
    let sign = if amount_minor < 0 { "-" } else { "" };
    let (major, minor) = (amount_minor.unsigned_abs() / unit, amount_minor.unsigned_abs() % unit);
    format!("{sign}{major}.{minor:0decimals$} {currency}")
}

/// `text` as a QR code (error correction M: a phone's screen, scratched or dim, still
/// scans), black on white with its quiet zone, as an 8-bit greyscale PNG.
pub fn qr_png(text: &str) -> Result<QrImage, MailError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    let modules = code.width();
    let colors = code.to_colors();
    let width = (modules + 2 * QUIET_MODULES) * MODULE_PX;
    let mut pixels = vec![255u8; width * width];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = ((i % modules + QUIET_MODULES) * MODULE_PX, (i / modules + QUIET_MODULES) * MODULE_PX);
        for row in y..y + MODULE_PX {
            pixels[row * width + x..row * width + x + MODULE_PX].fill(0);
        }
    }
    let mut png = Vec::new();
    let side = u32::try_from(width).expect("a QR code is at most a few hundred pixels wide");
    let mut encoder = png::Encoder::new(&mut png, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(QrImage { png, width })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_in_the_currencys_major_unit() {
        assert_eq!(money(1250, "EUR"), "12.50 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(0, "EUR"), "0.00 EUR");
        assert_eq!(money(1250, "JPY"), "1250 JPY");
        assert_eq!(money(1250, "KWD"), "1.250 KWD");
        assert_eq!(money(-5, "EUR"), "-0.05 EUR");
    }

    #[test]
    fn a_qr_png_has_its_quiet_zone_and_square_modules() {
        let qr = qr_png("hello").unwrap();
        // Version 1 (21 modules) and the quiet zone on both sides, 4 px each.
        assert_eq!(qr.width, (21 + 8) * 4);
        assert_eq!(&qr.png[1..4], b"PNG");
    }
}
