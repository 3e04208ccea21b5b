# Stand-in for the pip bootstrap script that `ansible-test` downloads from bootstrap.pypa.io,
# which air-gapped sites (and this project's CI) cannot reach. ansible-test runs it with the
# target interpreter and pip's arguments; we install pip from the interpreter's own ensurepip
# and then let pip do the rest. tools/sanity.sh puts it in ansible-test's cache.
import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    subprocess.check_call([sys.executable, '-m', 'ensurepip'])
    if args:
        subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)


if __name__ == '__main__':
    main()
