//! The classic oversell race, for people to watch: more fans than places, all at once.

use serde_json::json;

use crate::client::{one_section_event, Gateway};
use crate::Target;

pub async fn run(target: &Target, places: u32, fans: usize) -> anyhow::Result<()> {
    let gateway = Gateway::connect(target, fans)?;
    // Free places, so each fan books in one step (paid places go through checkout).
    let section = json!({ "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 0, "currency": "EUR" }, "capacity": places });
    let (event_id, sections) = gateway.create_event(one_section_event("The race", section)).await?;
    println!("event {event_id}: {places} places, {fans} fans booking one each at the same instant");
    let request = json!({ "section_id": sections[0], "quantity": 1 });
    let attempts = (0..fans).map(|i| {
        let token = gateway.token(&format!("fan-{i}"), event_id);
        let (gateway, request) = (&gateway, &request);
        async move { (i, gateway.book(event_id, &token, request).await) }
    });
    let mut won = 0;
    for (i, outcome) in futures::future::join_all(attempts).await {
        let outcome = outcome?;
        if outcome.status == 201 {
            won += 1;
            println!("  fan-{i:<3} booked   (booking {})", outcome.body["id"].as_str().unwrap_or("?"));
        } else {
            println!("  fan-{i:<3} refused  {} {}", outcome.status, outcome.code);
        }
    }
    let details = gateway.section_counts(event_id).await?;
    let remaining = &details["sections"][0]["remaining"];
    let booked = &details["sections"][0]["booked"];
    println!("{won} of {fans} fans succeeded; booked {booked}, remaining {remaining}, capacity {places}");
    let expected = (places as usize).min(fans);
    anyhow::ensure!(won == expected && booked == expected, "expected exactly {expected} bookings");
    Ok(())
}
