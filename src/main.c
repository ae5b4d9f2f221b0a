#include "cuepoint/cli.h"

int main(int argc, char **argv)
{
    return cue_cli_main(argc, argv);
}
