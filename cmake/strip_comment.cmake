# CPack runs this after installing into its staging tree and before packing:
# the .comment section (the compilers' version strings) goes, as Debian's
# dh_strip removes it, since nothing at run time reads it.
file(GLOB_RECURSE cue_bins "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/usr/bin/*")
foreach(bin IN LISTS cue_bins)
  execute_process(COMMAND objcopy --remove-section=.comment ${bin} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "objcopy --remove-section=.comment ${bin} failed")
  endif()
endforeach()
