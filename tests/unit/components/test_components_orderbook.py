"""The order book view: levels, the spread line."""
from app.market import simulate_order_book
from components.orderbook import order_book_table


def test_book006_views_render_levels():
    book = simulate_order_book(190.0, 10, 5.0, 1)
    table = order_book_table(book, rows=4)
    body = table.children[1].children
    assert len(body) == 4 + 1 + 4  # asks, spread line, bids
    assert "spread" in body[4].children.children
