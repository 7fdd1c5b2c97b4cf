"""README's opening commands are the ones CI runs."""
import re


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, commands
    assert "python -m service" in commands[0]
    assert commands[1] in (repo_root / ".ci" / "run").read_text()
