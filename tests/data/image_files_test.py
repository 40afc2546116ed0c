"""`find_images`: every image under a folder, in any layout, on real CIFAR-10 JPEGs."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from keras_simclr.data import ImageFiles
from keras_simclr.data import find_images
from tests.data.jpeg_files import cifar_jpegs
from tests.data.jpeg_files import flat_names
from tests.data.jpeg_files import nested_names
from tests.data.jpeg_files import write_files


def test_flat_folder_lists_every_image_unlabelled(tmp_path):
    jpegs, _ = cifar_jpegs(12)
    names = flat_names(12)
    write_files(tmp_path, names, jpegs)
    write_files(tmp_path, ["notes.txt", ".hidden.jpg", "README"], [b"x", jpegs[0], b"y"])
    files = find_images(tmp_path)
    assert isinstance(files, ImageFiles)
    assert files.root == str(tmp_path) and files.num_images == 12
    assert files.relative_paths == sorted(names)
    assert files.paths == [os.path.join(str(tmp_path), name) for name in sorted(names)]
    assert files.labels is None and files.class_names is None
    for path, relative in zip(files.paths, files.relative_paths):
        assert os.path.isabs(path)
        with open(path, "rb") as file:
            assert file.read() == jpegs[names.index(relative)]


def test_nested_folder_lists_every_depth_unlabelled(tmp_path):
    jpegs, _ = cifar_jpegs(20)
    names = nested_names(20)
    write_files(tmp_path, names, jpegs)
    write_files(tmp_path, [".cache/thumb.jpg", "2024/.trash/old.jpg"], jpegs[:2])
    files = find_images(str(tmp_path))
    assert files.relative_paths == sorted(names)
    assert {name.count("/") for name in files.relative_paths} == {0, 1, 2, 3}
    assert files.labels is None and files.class_names is None
    # The order is by relative path, not by folder walk.
    assert files.relative_paths[0] == "2024/beach/photo_002.jpg"


def test_class_layout_has_labels(tmp_path):
    jpegs, labels = cifar_jpegs(30)
    classes = ["truck", "cat", "bird"]
    names = [f"{classes[i % 3]}/{i:02d}.jpg" for i in range(30)]
    write_files(tmp_path, names, jpegs)
    files = find_images(tmp_path)
    assert files.class_names == ["bird", "cat", "truck"]
    assert files.labels.dtype == np.int32 and files.labels.shape == (30,)
    for relative, label in zip(files.relative_paths, files.labels):
        assert files.class_names[label] == relative.split("/")[0]
    np.testing.assert_array_equal(np.bincount(files.labels), [10, 10, 10])


def test_split_layout_is_unlabelled_recursive(cifar_folder):
    # ROOT/{train,test}/<class>/: two folders deep, so no labels by layout.
    files = find_images(cifar_folder)
    assert files.num_images == 400 and files.labels is None
    assert files.relative_paths[0].startswith("test/airplane/")
    assert sum(path.startswith("train/") for path in files.relative_paths) == 200


def test_every_format_both_decoders_read(tmp_path):
    jpegs, _ = cifar_jpegs(1)
    image = Image.open(io.BytesIO(jpegs[0]))
    for name in ("a.png", "b.BMP", "c.gif", "d.webp", "e.tiff"):
        image.save(tmp_path / name)
    write_files(tmp_path, ["f.Jpeg"], jpegs)
    files = find_images(tmp_path)
    assert files.relative_paths == ["a.png", "b.BMP", "c.gif", "d.webp", "f.Jpeg"]


def test_symlinked_folders_are_followed_once(tmp_path):
    jpegs, _ = cifar_jpegs(4)
    outside = tmp_path / "outside"
    write_files(outside, ["x.jpg", "y.jpg"], jpegs[:2])
    root = tmp_path / "root"
    write_files(root, ["own/z.jpg"], jpegs[2:3])
    os.symlink(outside, root / "linked")
    os.symlink(root, root / "own" / "loop")  # a cycle back to the root
    files = find_images(root)
    assert files.relative_paths == ["linked/x.jpg", "linked/y.jpg", "own/z.jpg"]
    assert files.paths[0] == os.path.join(str(root), "linked", "x.jpg")


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*Received: root='.*nowhere'"):
        find_images(tmp_path / "nowhere")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"is not a folder.*file\.jpg"):
        find_images(tmp_path / "file.jpg")


def test_folder_without_images_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"No image files \(\.jpg, .*\.webp.*it holds no files"):
        find_images(tmp_path)
    write_files(tmp_path, ["a.txt", "b/c.txt", "d.tiff", "e"], [b"1", b"2", b"3", b"4"])
    with pytest.raises(ValueError) as error:
        find_images(tmp_path)
    message = str(error.value)
    assert "\n" not in message and f"Received: root={str(tmp_path)!r}" in message
    assert "4 other files (2 .txt, 1 .tiff, 1 (no extension))" in message
