from nnlab.engine import History


def test_csv_round_trip_with_tags(tmp_path):
    h = History()
    h.log(impl="numpy", epoch=1, train_loss=0.5)
    h.log(impl="torch", epoch=1, train_loss=0.25, test_acc=0.75)
    h.to_csv(tmp_path / "h.csv")
    back = History.load_csv(tmp_path / "h.csv")
    assert back.rows == h.rows
    assert back.column("train_loss", impl="torch") == [0.25]
    assert back.column("test_acc") == [0.75]
