import kgrec.encoders as enc


def test_all_names_exist_and_are_sorted_unique() -> None:
    assert len(set(enc.__all__)) == len(enc.__all__)
    for name in enc.__all__:
        assert hasattr(enc, name), name


def test_every_public_class_is_exported() -> None:
    public = {n for n, v in vars(enc).items() if isinstance(v, type) and not n.startswith("_")}
    assert public <= set(enc.__all__)
