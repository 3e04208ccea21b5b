"""Progress of a restic restore, for the backup role's drill (it runs the restore module asynchronously).

restic 0.14 (Debian 12) prints no progress for a restore, and it preallocates every file, so the restored files'
size says nothing either. What does: the bytes the restic process has written (/proc/<pid>/io wchar), against
the size of the snapshot (`restic stats --mode restore-size`).

  restore_progress.py size SNAPSHOT [HOST] < env.json
      {"total_size": N, "total_file_count": N} of the snapshot (HOST selects `latest`); the repository, password
      file and credentials come as a JSON object on stdin (never on the command line).
  restore_progress.py progress --target DIR --started EPOCH --total N --wait S --file PATH --job FILE
      waits up to S seconds while the async job (its results FILE) has not finished - returns as soon as it has -
      then prints and writes (atomically, 0644) the progress of the restic restore into DIR:
      {"running", "bytes", "total", "percent", "rate", "eta_seconds", "phase", "message", ...}.
"""

import json
import os
import subprocess
import sys
import time


def size(snapshot, host):
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in json.load(sys.stdin).items()})
    env['LC_ALL'] = 'C'
    argv = ['restic', 'stats', '--json', '--mode', 'restore-size']
    if host and snapshot == 'latest':
        argv += ['--host', host]
    proc = subprocess.run(argv + ['--', snapshot], env=env, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        # Never the output itself: restic may quote the repository URL.
        return {'error': 'restic stats exited %d' % proc.returncode}
    try:
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        return {'total_size': int(stats['total_size']), 'total_file_count': int(stats['total_file_count'])}
    except (ValueError, KeyError, IndexError):
        return {'error': 'restic stats printed no size'}


def restic_pid(target):
    """PID of the `restic restore ... --target TARGET` process, or None."""
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as fh:
                argv = fh.read().split(b'\0')
        except OSError:
            continue
        args = [a.decode('utf-8', 'replace') for a in argv]
        if (args and os.path.basename(args[0]) == 'restic' and 'restore' in args
                and '--target' in args and args.index('--target') + 1 < len(args)
                and args[args.index('--target') + 1] == target):
            return int(name)
    return None


def written(pid):
    try:
        with open('/proc/%d/io' % pid) as fh:
            for line in fh:
                if line.startswith('wchar:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def human(n):
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(n) < 1024 or unit == 'TiB':
            return ('%d %s' % (n, unit)) if unit == 'B' else ('%.1f %s' % (n, unit))
        n /= 1024.0
    return str(n)


def job_finished(job):
    """True once Ansible's async results file holds the module's result (not the {"finished": 0} placeholder)."""
    try:
        with open(job) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False  # not written yet, or being written
    return not (data.get('started') and not data.get('finished'))


def progress(target, started, total, wait, path, job):
    deadline = time.monotonic() + wait
    while job and not job_finished(job) and time.monotonic() < deadline:
        time.sleep(1)  # polls the job's end; the report comes at the deadline or as soon as it has ended
    pid = restic_pid(target)
    now = time.time()
    done = written(pid) if pid is not None else None
    state = {'running': pid is not None, 'target': target, 'time': now, 'elapsed': round(now - started, 1),
             'bytes': done, 'total': total if total > 0 else None}
    if pid is None and job and job_finished(job):
        state.update(phase='finished', message='the restore has finished')
    elif pid is None:
        state.update(phase='finishing', message='restic is not running (starting, or done and being verified)')
    elif done is None:
        state.update(phase='unknown', message='restic runs; its progress cannot be read (/proc/%d/io)' % pid)
    else:
        rate = done / max(now - started, 1e-3)
        state['rate'] = round(rate)
        if total > 0 and done >= total:
            state.update(bytes=total, percent=100.0, eta_seconds=0, phase='verifying',
                         message='%s restored, verifying the restored files' % human(total))
        elif total > 0:
            eta = (total - done) / rate if rate > 0 else None
            state.update(percent=round(100.0 * done / total, 1), eta_seconds=None if eta is None else round(eta),
                         phase='restoring',
                         message='%s of %s (%.1f %%), %s/s, ETA %s' % (
                             human(done), human(total), 100.0 * done / total, human(rate),
                             'unknown' if eta is None else '%d min %02d s' % divmod(int(eta), 60)))
        else:
            state.update(phase='restoring', message='%s restored, %s/s, total size unknown' % (human(done), human(rate)))
    if path:
        tmp = '%s.tmp.%d' % (path, os.getpid())
        with open(tmp, 'w') as fh:
            json.dump(state, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return state


def main(argv):
    if argv[:1] == ['size'] and len(argv) in (2, 3):
        print(json.dumps(size(argv[1], argv[2] if len(argv) == 3 else '')))
        return 0
    if argv[:1] == ['progress']:
        opts = dict(zip(argv[1::2], argv[2::2]))
        print(json.dumps(progress(opts['--target'], float(opts['--started']), int(float(opts.get('--total') or 0)),
                                  float(opts.get('--wait', 30)), opts.get('--file', ''), opts.get('--job', ''))))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
