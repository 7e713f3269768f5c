from raysearch.markdown import markdown_table, metrics_table


def test_markdown_table_formats_floats_to_four_decimals():
    assert markdown_table(["a", "b"], [[1, 0.123456], ["x", "y"]]) == "| a | b |\n|---|---|\n| 1 | 0.1235 |\n| x | y |"


def test_metrics_table_has_a_column_per_metric_and_k():
    values = {f"{m}@{k}": 0.5 for m in ("recall", "ndcg", "mrr", "hit") for k in (5, 10)}
    text = metrics_table({"valid": values, "test": values}, (5, 10))
    assert text.splitlines()[0] == ("| part | recall@5 | ndcg@5 | mrr@5 | hit@5 | recall@10 | ndcg@10 | mrr@10 | "
                                    "hit@10 |")
    assert text.splitlines()[3] == "| test" + " | 0.5000" * 8 + " |"
