"""Entry script that `ray submit` and `ray job submit` run on the head node: `raysearch tune` joined to
the cluster it runs on (``--address auto``); every other argument goes to `raysearch tune`.

    ray submit clusters/aws.yaml clusters/raysearch_tune.py -- --space search_spaces/default.yaml --storage s3://BUCKET/raysearch
    ray job submit --address http://HEAD:8265 --working-dir . -- python clusters/raysearch_tune.py --space ... --storage ...
"""

import sys

from raysearch.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", "--address", "auto", *sys.argv[1:]]))
