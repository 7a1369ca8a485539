"""The simulated order book: ticks, sides, ordering, determinism."""
import pytest
from hypothesis import given, strategies as st

from components.orderbook import depth_figure, order_book_table, simulate_order_book, tick_size


@pytest.mark.parametrize("price, tick", [(190.12, 0.01), (64_000.0, 1.0), (1.0843, 0.0001), (0.006712, 1e-7),
                                         (3400.0, 0.1), (10.0, 0.001)])
def test_book001_tick_is_about_one_ten_thousandth(price, tick):
    assert tick_size(price) == pytest.approx(tick)


@pytest.mark.parametrize("price", [0.0, -1.0, float("nan"), float("inf")])
def test_book002_tick_rejects_non_positive_prices(price):
    with pytest.raises(ValueError):
        tick_size(price)


@given(price=st.floats(min_value=1e-4, max_value=1e6), depth=st.integers(1, 30),
       size=st.floats(min_value=0.01, max_value=1e4), seed=st.integers(0, 2**32 - 1))
def test_book003_bids_below_asks_above_sorted_best_first(price, depth, size, seed):
    book = simulate_order_book(price, depth, size, seed)
    bids, asks = book["bids"], book["asks"]
    assert book["simulated"] is True
    assert len(bids) == len(asks) == depth
    assert bids[0]["price"] < asks[0]["price"]
    assert bids[0]["price"] <= price + book["tick_size"] / 2 and asks[0]["price"] >= price - book["tick_size"] / 2
    assert [b["price"] for b in bids] == sorted((b["price"] for b in bids), reverse=True)
    assert [a["price"] for a in asks] == sorted(a["price"] for a in asks)
    for side in (bids, asks):
        assert all(lv["size"] > 0 for lv in side)
        totals = [lv["total"] for lv in side]
        assert totals == sorted(totals) and totals[-1] == pytest.approx(sum(lv["size"] for lv in side))
    assert book["spread"] == pytest.approx(asks[0]["price"] - bids[0]["price"], abs=book["tick_size"] / 10)


def test_book004_same_seed_same_book_other_seed_other_book():
    a, b = simulate_order_book(190.0, 10, 5.0, 42), simulate_order_book(190.0, 10, 5.0, 42)
    assert a == b
    assert simulate_order_book(190.0, 10, 5.0, 43) != a


def test_book005_depth_must_be_positive():
    with pytest.raises(ValueError):
        simulate_order_book(100.0, 0)


def test_book006_views_render_levels():
    book = simulate_order_book(190.0, 10, 5.0, 1)
    table = order_book_table(book, rows=4)
    body = table.children[1].children
    assert len(body) == 4 + 1 + 4  # asks, spread line, bids
    assert "spread" in body[4].children.children
    fig = depth_figure(book)
    assert [len(t.x) for t in fig.data] == [10, 10]
