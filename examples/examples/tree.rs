//! A request tree, the shape of a server's cancelation.
//!
//! ```text
//!   server ─┬─ request 1 ─┬─ db query
//!           │             └─ render
//!           ├─ request 2 ─┬─ db query ═╗  (any_of: request 2 OR maintenance)
//!           │             └─ render    ║
//!           └─ request 3 ── db query   ║
//!   maintenance (an independent root) ═╝
//! ```
//!
//! Each event below cancels one node with a reason; the printout shows which nodes stopped and
//! the reason each one sees. Descendants inherit the reason of the ancestor whose cancelation
//! reached them, and the first reason a node gets is the one it keeps.
//!
//! Run with `cargo run --example tree`.

use cancelable::{CancelCallback, CancelReason, CancellationToken};

/// A named node of the tree, with a callback that reports the moment it stops.
struct Node {
    name: &'static str,
    token: CancellationToken,
    // Kept alive so the report runs; dropping it would unregister the callback.
    _report: CancelCallback,
}

impl Node {
    fn new(name: &'static str, token: CancellationToken) -> Self {
        // `on_cancel` runs synchronously on the cancelling thread, so the lines printed here
        // appear right under the event that caused them.
        let report = token.on_cancel(move |reason| println!("    stopped: {name:<22} ({reason})"));
        Node {
            name,
            token,
            _report: report,
        }
    }
}

fn print_tree(nodes: &[Node]) {
    println!("  state:");
    for node in nodes {
        match node.token.reason() {
            Some(reason) => println!("    {:<22} cancelled: {reason}", node.name),
            None => println!("    {:<22} running", node.name),
        }
    }
}

fn main() {
    let server = CancellationToken::new();
    // Maintenance is not part of the server's tree: it is its own root, owned by an operator.
    let maintenance = CancellationToken::new();

    let req1 = server.child_token();
    let req2 = server.child_token();
    let req3 = server.child_token();

    // Request 2's database query must stop when the request stops *or* when the database goes
    // into maintenance: a linked token with two parents.
    let req2_query = CancellationToken::any_of([&req2, &maintenance]);

    let nodes = [
        Node::new("server", server.clone()),
        Node::new("maintenance", maintenance.clone()),
        Node::new("request 1", req1.clone()),
        Node::new("request 1 / db query", req1.child_token()),
        Node::new("request 1 / render", req1.child_token()),
        Node::new("request 2", req2.clone()),
        Node::new("request 2 / db query", req2_query.clone()),
        Node::new("request 2 / render", req2.child_token()),
        Node::new("request 3", req3.clone()),
        Node::new("request 3 / db query", req3.child_token()),
    ];
    print_tree(&nodes);

    println!("\nevent: the client of request 1 closes its connection");
    req1.cancel_with(CancelReason::disconnected().with_message("client closed the connection"));
    // Only request 1's subtree stopped: siblings and the server are untouched.
    print_tree(&nodes);

    println!("\nevent: the database enters maintenance");
    maintenance.cancel_with(CancelReason::shutdown().with_message("database failover"));
    // The linked query stopped; request 2 itself keeps running (cancelation never goes upward).
    print_tree(&nodes);

    println!("\nevent: request 3 runs out of time");
    req3.cancel_with(CancelReason::timeout().with_message("no reply in 3s"));

    println!("\nevent: the server shuts down");
    server.cancel_with(CancelReason::signal().with_message("SIGTERM"));
    // Everything is stopped now, but each node still reports the reason that reached it first:
    // request 1 was a disconnect, request 2's query a failover, request 3 a timeout.
    print_tree(&nodes);

    // The reasons are data: a server can count them, log them, or map them to status codes.
    let timeouts = nodes
        .iter()
        .filter(|node| {
            node.token
                .reason()
                .is_some_and(|reason| reason.kind() == cancelable::CancelKind::Timeout)
        })
        .count();
    println!("\n{timeouts} nodes stopped because of a timeout");
}
