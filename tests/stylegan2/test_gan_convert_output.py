"""`ganverse3d gan convert` never writes its output over the weights it converts (in any spelling of the path)."""

import os

import pytest
import torch

from ganverse3d.cli import main
from ganverse3d.stylegan2 import Generator
from ganverse3d.stylegan2.load import save_generator


@pytest.mark.parametrize("spelling", ["same", "dotted", "link"])
def test_convert_refuses_to_replace_its_source(tmp_path, capsys, spelling):
    torch.manual_seed(0)
    source = tmp_path / "g.safetensors"
    save_generator(Generator(z_dim=8, w_dim=8, img_resolution=8, img_channels=3, channel_base=32, channel_max=8,
                             num_mapping_layers=1), source)
    out = {"same": source, "dotted": tmp_path / "sub" / ".." / "g.safetensors",
           "link": tmp_path / "link.safetensors"}[spelling]
    (tmp_path / "sub").mkdir()
    os.symlink(source, tmp_path / "link.safetensors")
    original, stat = source.read_bytes(), source.stat()
    assert main(["gan", "convert", str(source), "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error == f"Error: Writing {out} would replace the weights {source}; change --out.\n"
    assert source.read_bytes() == original and source.stat().st_ino == stat.st_ino
